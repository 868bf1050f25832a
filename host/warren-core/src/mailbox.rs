//! One process's mailbox, kept by its worker's [`Core`](crate::Core) for
//! every front-end that does not keep its own
//! ([`FrontendFactory::keeps_mailboxes`](crate::FrontendFactory::keeps_mailboxes)):
//! the inbox, lifecycle events, listened topics and the payloads routed to
//! them, and fired timers. A front-end reaches it through
//! [`Core::with_mailbox`](crate::Core::with_mailbox) and only learns that
//! something arrived ([`Item::Wake`]); the routing rules live here once.
//!
//! Guarantees: a message goes to its topic's listen queue when that topic
//! is listened to, else to the inbox, in arrival order; a timer fire shows
//! once (and never after `Core::cancel_timer`); every message taken or dropped
//! unread is counted once in [`Mailbox::take_taken`], which the core
//! subtracts from the process's `mailbox_limit` count.

use std::collections::VecDeque;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::item::{Event, Item, Message};
use crate::payload::Payload;
use crate::value::Value;

/// What the host has delivered to a process and it has not taken yet.
#[derive(Default, Debug)]
pub struct Mailbox {
    messages: VecDeque<Message>,
    events: VecDeque<Event>,
    /// Listened topics and the payloads that arrived for them.
    topics: FxHashMap<String, VecDeque<Payload>>,
    fired: FxHashSet<u64>,
    /// Messages taken (or dropped unread) since the core last asked.
    taken: u32,
}

impl Mailbox {
    /// Files a message, event or timer fire; any other item is handed back
    /// (it is the front-end's, not the mailbox's).
    pub fn deliver(&mut self, item: Item) -> Result<(), Item> {
        match item {
            Item::Msg(m) => self.deliver_message(m),
            Item::Event(e) => self.events.push_back(e),
            Item::Timer(id) => {
                self.fired.insert(id);
            }
            other => return Err(other),
        }
        Ok(())
    }

    /// Queues a message: on its topic's listen queue if there is one (one
    /// payload as itself, several as an array), else in the inbox.
    fn deliver_message(&mut self, mut message: Message) {
        let Some(queue) = self.topics.get_mut(&*message.topic) else {
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
        self.events.pop_front()
    }

    /// Takes the oldest event `pick` accepts, leaving the others in order.
    pub fn take_event_where(&mut self, pick: impl Fn(&Event) -> bool) -> Option<Event> {
        let at = self.events.iter().position(pick)?;
        self.events.remove(at)
    }

    /// Starts routing messages on `topic` to their own queue (no change if
    /// it already is).
    pub fn listen(&mut self, topic: &str) {
        if !self.topics.contains_key(topic) {
            self.topics.insert(topic.to_owned(), VecDeque::new());
        }
    }

    /// Takes the oldest payload that arrived for a listened `topic`; `None`
    /// as the outer value when the topic is not listened to.
    pub fn take_topic(&mut self, topic: &str) -> Option<Option<Payload>> {
        let v = self.topics.get_mut(topic)?.pop_front();
        if v.is_some() {
            self.taken = self.taken.saturating_add(1);
        }
        Some(v)
    }

    /// Stops listening to `topic`; what it still buffers is dropped (and
    /// counted as taken).
    pub fn unlisten(&mut self, topic: &str) {
        if let Some(queue) = self.topics.remove(topic) {
            let n = u32::try_from(queue.len()).unwrap_or(u32::MAX);
            self.taken = self.taken.saturating_add(n);
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

#[cfg(test)]
mod tests;
