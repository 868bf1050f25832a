//! A WASM process's store data: its WASI context and the mailbox the driver
//! fills from the host's items. Host functions reach the worker's `Core`
//! through a thread-local set while the driver polls, because the store
//! data must be `Send` and the core is not.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use rustc_hash::{FxHashMap, FxHashSet};
use warren_core::{Core, CoreRef, Event, Message, Payload, Pid, Value};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// What the host has delivered to a process and it has not taken yet.
#[derive(Default)]
pub(crate) struct Mailbox {
    pub messages: VecDeque<Message>,
    pub events: VecDeque<Event>,
    /// Listened topics and the payloads that arrived for them.
    pub topics: FxHashMap<String, VecDeque<Payload>>,
    pub fired: FxHashSet<u64>,
    /// Timers whose wait ended another way; their fire is ignored.
    pub abandoned: FxHashSet<u64>,
    /// Messages taken since the driver last told the core (`mailbox_limit`).
    pub taken: u32,
}

/// Shared between a process's store and the driver.
pub(crate) type MailboxRef = Arc<Mutex<Mailbox>>;

impl Mailbox {
    /// Takes the oldest inbox message.
    pub fn take_message(&mut self) -> Option<Message> {
        let m = self.messages.pop_front()?;
        self.taken += 1;
        Some(m)
    }

    /// Takes the oldest payload that arrived for a listened `topic`; `None`
    /// as the outer value when the topic is not listened to.
    pub fn take_topic(&mut self, topic: &str) -> Option<Option<Payload>> {
        let v = self.topics.get_mut(topic)?.pop_front();
        if v.is_some() {
            self.taken += 1;
        }
        Some(v)
    }

    /// Stops listening to `topic`; what it still buffers is dropped.
    pub fn drop_topic(&mut self, topic: &str) {
        if let Some(queue) = self.topics.remove(topic) {
            let n = u32::try_from(queue.len()).unwrap_or(u32::MAX);
            self.taken = self.taken.saturating_add(n);
        }
    }

    /// Queues a message: on its topic's `listen` channel if there is one
    /// (one payload as itself, several as an array), else in the inbox.
    pub fn deliver(&mut self, mut message: Message) {
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
}

pub(crate) fn lock(mailbox: &MailboxRef) -> MutexGuard<'_, Mailbox> {
    mailbox
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The data of one process's `Store`.
pub(crate) struct ProcState {
    pub pid: Pid,
    pub mailbox: MailboxRef,
    pub next_timer: u64,
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limits: crate::limiter::ProcLimiter,
}

impl WasiView for ProcState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

thread_local! {
    static CORE: RefCell<Option<CoreRef>> = const { RefCell::new(None) };
}

/// Makes `core` reachable from host functions on this thread.
pub(crate) fn install_core(core: CoreRef) {
    CORE.with(|c| *c.borrow_mut() = Some(core));
}

/// Runs `f` with this worker's core. Host functions only run while the
/// driver polls on a worker thread, where the core is installed.
pub(crate) fn with_core<R>(f: impl FnOnce(&mut Core) -> R) -> Option<R> {
    CORE.with(|c| {
        let core = c.borrow().clone()?;
        let mut core = core.try_borrow_mut().ok()?;
        Some(f(&mut core))
    })
}
