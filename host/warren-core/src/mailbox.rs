//! One process's mailbox, kept by its worker's [`Core`](crate::Core) for
//! every front-end that does not keep its own
//! ([`FrontendFactory::keeps_mailboxes`](crate::FrontendFactory::keeps_mailboxes)):
//! the inbox, lifecycle events, listened topics and the payloads routed to
//! them, and fired timers. A front-end reaches it through
//! [`Core::with_mailbox`](crate::Core::with_mailbox) and only learns that
//! something arrived ([`Item::Wake`]); the routing rules live here once.
//!
//! A message queued here holds its size against its sender's host's
//! `memory_total` (the core's `Reservation`); an event (an EXIT with a
//! result, a CANCEL with a reason) holds its size against the receiving
//! process's host's, from its arrival until it is taken or the process
//! ends: a watcher that never reads its events cannot park, uncounted,
//! what its monitored processes returned.
//!
//! Guarantees: a message goes to its topic's listen queue when that topic
//! is listened to, else to the inbox, in arrival order; a timer fire shows
//! once (and never after `Core::cancel_timer`); every message taken or dropped
//! unread is counted once in [`Mailbox::take_taken`], which the core
//! subtracts from the process's `mailbox_limit` count.

use std::collections::VecDeque;

use rustc_hash::{FxHashMap, FxHashSet};

use std::sync::Arc;

use crate::item::{Event, Item, Message};
use crate::limits::HostQuota;
use crate::payload::Payload;
use crate::pid::Pid;
use crate::value::Value;

/// What the host has delivered to a process and it has not taken yet.
#[derive(Default, Debug)]
pub struct Mailbox {
    messages: VecDeque<Message>,
    /// Events and the bytes each holds of `quota`'s total.
    events: VecDeque<(Event, u64)>,
    /// The host the events are counted against (none: not counted).
    quota: Option<Arc<HostQuota>>,
    /// Listened topics: each one's listen (see [`Listen`]) and the
    /// payloads that arrived for it.
    topics: FxHashMap<String, (Listen, VecDeque<Payload>)>,
    /// The number the next new listen gets.
    next_listen: u64,
    fired: FxHashSet<u64>,
    /// Senders with a CANCEL waiting in `events` (see `deliver_event`).
    cancelling: FxHashSet<Pid>,
    /// Messages taken (or dropped unread) since the core last asked.
    taken: u32,
}

/// One listen of a topic: from the first handle made while the topic was
/// not listened to, until the last is dropped or one unlistens it.
#[derive(Debug)]
struct Listen {
    /// Which listen (a number the mailbox never gives twice).
    id: u64,
    /// Its handles still open.
    handles: u32,
}

impl Mailbox {
    /// The mailbox of a process of the host of `quota`, whose events are
    /// counted against its `memory_total`.
    pub fn counted(quota: Arc<HostQuota>) -> Self {
        let mut mailbox = Mailbox::default();
        mailbox.quota = Some(quota);
        mailbox
    }

    /// Files a message, event or timer fire; any other item is handed back
    /// (it is the front-end's, not the mailbox's).
    pub fn deliver(&mut self, item: Item) -> Result<(), Item> {
        match item {
            Item::Msg(m) => self.deliver_message(m),
            Item::Event(e) => self.deliver_event(e),
            Item::Timer(id) => {
                self.fired.insert(id);
            }
            other => return Err(other),
        }
        Ok(())
    }

    /// Queues an event, counting its size (added even past the total: an
    /// EXIT is never dropped, and the host's next allocations are refused
    /// instead). A CANCEL from a sender whose earlier CANCEL is still
    /// waiting is dropped: cancelling is idempotent, and a loop of cancels
    /// parked one event each (6,000 reasons of 512 KiB, 3.1 GB counted
    /// against the target's host, whose other processes then failed).
    fn deliver_event(&mut self, event: Event) {
        if let Event::Cancel { from, .. } = &event
            && !self.cancelling.insert(*from)
        {
            return;
        }
        let bytes = match &self.quota {
            Some(quota) => {
                let bytes = event_bytes(&event);
                quota.add_memory(bytes);
                bytes
            }
            None => 0,
        };
        self.events.push_back((event, bytes));
    }

    /// Gives back what an event taken out held.
    fn taken_event(&mut self, (event, bytes): (Event, u64)) -> Event {
        if let Some(quota) = &self.quota {
            quota.release_memory(bytes);
        }
        if let Event::Cancel { from, .. } = &event {
            self.cancelling.remove(from);
        }
        event
    }

    /// Queues a message: on its topic's listen queue if there is one (one
    /// payload as itself, several as an array), else in the inbox.
    fn deliver_message(&mut self, mut message: Message) {
        let Some((_, queue)) = self.topics.get_mut(&*message.topic) else {
            self.messages.push_back(message);
            return;
        };
        let value = match message.payloads.pop() {
            Some(one) if message.payloads.is_empty() => one,
            last => {
                let mut values: Vec<Value> = message
                    .payloads
                    .into_iter()
                    .map(Payload::into_value)
                    .collect();
                values.extend(last.map(Payload::into_value));
                Payload::Value(Value::Array(values))
            }
        };
        queue.push_back(value);
    }

    /// Takes the oldest inbox message.
    pub fn take_message(&mut self) -> Option<Message> {
        let m = self.messages.pop_front()?;
        self.taken = self.taken.saturating_add(1);
        Some(m)
    }

    /// Takes the oldest lifecycle event.
    pub fn take_event(&mut self) -> Option<Event> {
        let held = self.events.pop_front()?;
        Some(self.taken_event(held))
    }

    /// Takes the oldest event `pick` accepts, leaving the others in order.
    pub fn take_event_where(&mut self, pick: impl Fn(&Event) -> bool) -> Option<Event> {
        let at = self.events.iter().position(|(e, _)| pick(e))?;
        let held = self.events.remove(at)?;
        Some(self.taken_event(held))
    }

    /// Starts routing messages on `topic` to their own queue, for one more
    /// listen handle (the queue is kept when it already is); answers the
    /// listen the handle belongs to, which its later calls name.
    pub fn listen(&mut self, topic: &str) -> u64 {
        if let Some((listen, _)) = self.topics.get_mut(topic) {
            listen.handles = listen.handles.saturating_add(1);
            return listen.id;
        }
        let id = self.next_listen;
        self.next_listen += 1;
        let listen = Listen { id, handles: 1 };
        self.topics
            .insert(topic.to_owned(), (listen, VecDeque::new()));
        id
    }

    /// Takes the oldest payload that arrived for `topic` while listen `id`
    /// holds it; `None` as the outer value when it does not (never
    /// listened, unlistened, or listened again since: a handle of an
    /// earlier listen reads as closed).
    pub fn take_topic(&mut self, topic: &str, id: u64) -> Option<Option<Payload>> {
        let (listen, queue) = self.topics.get_mut(topic)?;
        if listen.id != id {
            return None;
        }
        let v = queue.pop_front();
        if v.is_some() {
            self.taken = self.taken.saturating_add(1);
        }
        Some(v)
    }

    /// Stops listen `id` of `topic`, for every handle; what it still
    /// buffers is dropped (and counted as taken). A handle of an earlier
    /// listen of the topic stops nothing.
    pub fn unlisten(&mut self, topic: &str, id: u64) {
        if self.topics.get(topic).is_some_and(|(l, _)| l.id == id)
            && let Some((_, queue)) = self.topics.remove(topic)
        {
            let n = u32::try_from(queue.len()).unwrap_or(u32::MAX);
            self.taken = self.taken.saturating_add(n);
        }
    }

    /// One handle of listen `id` of `topic` is gone (dropped unclosed): the
    /// topic is unlistened when it was the last. Without this, a loop of
    /// listens whose handles were dropped kept every topic: 5,000,000 of
    /// 1 KiB held 5.5 GB no limit counted, and the map's growth held the
    /// worker 2 s. A handle of an earlier listen (stopped since, the topic
    /// listened again) changes nothing: its drop took the new listen's
    /// count down, unlistened it and dropped messages its senders had been
    /// told were sent (red team M).
    pub fn release(&mut self, topic: &str, id: u64) {
        match self.topics.get_mut(topic) {
            Some((listen, _)) if listen.id == id && listen.handles > 1 => listen.handles -= 1,
            Some((listen, _)) if listen.id == id => self.unlisten(topic, id),
            _ => {}
        }
    }

    /// Whether timer `id` has fired; a fire is reported once. (A wait
    /// that ends another way cancels its timer, `Core::cancel_timer`.)
    pub fn take_fired(&mut self, id: u64) -> bool {
        self.fired.remove(&id)
    }

    /// How many messages were taken or dropped unread since the last call.
    pub fn take_taken(&mut self) -> u32 {
        std::mem::take(&mut self.taken)
    }
}

impl Drop for Mailbox {
    /// The events nobody took give their bytes back with the process.
    fn drop(&mut self) {
        if let Some(quota) = &self.quota {
            quota.release_memory(self.events.iter().map(|(_, bytes)| bytes).sum());
        }
    }
}

/// The bytes an event holds: what it carries, and a fixed part for the rest.
fn event_bytes(event: &Event) -> u64 {
    event.carried_bytes().saturating_add(64)
}

#[cfg(test)]
mod tests;
