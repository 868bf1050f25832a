//! A scripted front-end for warren-core's own tests: each process is a
//! Rust closure called with every item it receives, so a test drives the
//! real runtime (workers, directory, limits, host calls) without a
//! language behind it.

use std::collections::HashMap;
use std::sync::Arc;

use crate::core::{Core, CoreRef};
use crate::frontend::{Frontend, FrontendFactory, Program};
use crate::item::Item;
use crate::limits::HostLimits;
use crate::pid::Pid;
use crate::runtime::HostSpec;
use crate::value::Value;

/// A process's behaviour: called with every item; `true` ends it.
type Step = dyn Fn(&mut Core, Pid, Item) -> bool + Send + Sync;

struct Script(Box<Step>);

/// The factory of the `script` front-end.
pub(crate) struct Factory;

impl FrontendFactory for Factory {
    fn name(&self) -> &'static str {
        "script"
    }
    fn create(&self, core: CoreRef, index: usize) -> Box<dyn Frontend> {
        Box::new(Driver {
            core,
            index,
            scripts: HashMap::new(),
        })
    }
    /// Scripts see every message, event and timer as an item.
    fn keeps_mailboxes(&self) -> bool {
        true
    }
}

/// The `script-mailbox` front-end: the same scripts, but the core keeps
/// their mailboxes (messages, events and timers arrive as `Item::Wake`).
pub(crate) struct MailboxFactory;

impl FrontendFactory for MailboxFactory {
    fn name(&self) -> &'static str {
        "script-mailbox"
    }
    fn create(&self, core: CoreRef, index: usize) -> Box<dyn Frontend> {
        Factory.create(core, index)
    }
}

struct Driver {
    core: CoreRef,
    index: usize,
    scripts: HashMap<Pid, Arc<Script>>,
}

impl Frontend for Driver {
    fn run(&mut self, budget: u32) -> bool {
        for _ in 0..budget {
            let mut core = self.core.borrow_mut();
            // A host call's value the way a front-end's fast path takes
            // it (`take_done`), anything else through `next_item`.
            let taken = match core.take_done(self.index) {
                Some((pid, op, value, keep)) => Some((
                    pid,
                    Item::Done {
                        op,
                        result: Ok(match keep {
                            Some(keep) => crate::hostcall::OpValue::Kept(value, keep),
                            None => crate::hostcall::OpValue::Value(value),
                        }),
                    },
                )),
                None => core.next_item(self.index),
            };
            let Some((pid, item)) = taken else {
                return false;
            };
            if let Item::Start { program, .. } = &item {
                let script = program.code.clone().downcast::<Script>().expect("script");
                self.scripts.insert(pid, script);
            }
            if let Item::Kill(reason) = item {
                self.scripts.remove(&pid);
                core.exit(pid, Err(reason));
                continue;
            }
            if matches!(item, Item::Msg(_)) {
                core.consumed(pid, 1);
            }
            let Some(script) = self.scripts.get(&pid).cloned() else {
                continue;
            };
            if (script.0)(&mut core, pid, item) {
                self.scripts.remove(&pid);
                core.exit(pid, Ok(Value::Nil));
            }
        }
        true
    }
}

/// A program `id` of the `script` front-end running `step`.
pub(crate) fn program(
    id: &str,
    step: impl Fn(&mut Core, Pid, Item) -> bool + Send + Sync + 'static,
) -> Program {
    program_on("script", id, step)
}

/// A program `id` of front-end `frontend` (`script` or `script-mailbox`).
pub(crate) fn program_on(
    frontend: &'static str,
    id: &str,
    step: impl Fn(&mut Core, Pid, Item) -> bool + Send + Sync + 'static,
) -> Program {
    Program {
        id: id.into(),
        frontend,
        code: Arc::new(Script(Box::new(step))),
    }
}

/// A program `id` whose process sends its pid on `started` when it
/// starts, then waits for good.
pub(crate) fn reports_start(id: &str, started: std::sync::mpsc::Sender<Pid>) -> Program {
    let started = std::sync::Mutex::new(started);
    program(id, move |_, me, item| {
        if matches!(item, Item::Start { .. }) {
            started.lock().expect("lock").send(me).expect("test alive");
        }
        false
    })
}

/// Host `name` with `workers` workers and `limits`.
pub(crate) fn host(name: &str, workers: usize, limits: HostLimits) -> HostSpec {
    HostSpec::new(name, workers).with_limits(limits)
}
