//! The seam between the process model and a language.
//!
//! A front-end is created once per worker thread (so it may hold `!Send`
//! state such as a Lua VM or a wasmtime store pool). It pulls the items of its
//! ready processes from [`Core::next_item`](crate::Core::next_item), runs
//! them, and reports back through the other `Core` methods. It never sees the
//! scheduler, other workers, or another front-end's processes.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::core::CoreRef;

/// A loaded entry: what a spawn of `id` runs.
pub struct Program {
    /// The entry id, e.g. `app.workers:handler`.
    pub id: String,
    /// The name of the front-end that runs it, e.g. `lua`.
    pub frontend: &'static str,
    /// Front-end specific code (source, compiled module, ...).
    pub code: Arc<dyn Any + Send + Sync>,
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Program")
            .field("id", &self.id)
            .field("frontend", &self.frontend)
            .finish_non_exhaustive()
    }
}

/// Makes one [`Frontend`] per worker thread.
pub trait FrontendFactory: Send + Sync {
    /// The front-end's name, matched against [`Program::frontend`].
    fn name(&self) -> &'static str;
    /// Creates this worker's instance. `index` identifies the front-end in
    /// [`Core::next_item`](crate::Core::next_item).
    fn create(&self, core: CoreRef, index: usize) -> Box<dyn Frontend>;
    /// Whether its processes read payloads as MessagePack (components
    /// do): a sender that knows it may encode them straight from its own
    /// values ([`Payload::Packed`](crate::Payload::Packed)) instead of
    /// building a [`Value`](crate::Value) the front-end would encode.
    fn reads_packed(&self) -> bool {
        false
    }
    /// Whether it keeps its processes' mailboxes itself and so receives
    /// every message, event and timer fire as an [`Item`](crate::Item).
    /// By default the core keeps them ([`crate::Mailbox`], read through
    /// [`Core::with_mailbox`](crate::Core::with_mailbox)) and the
    /// front-end is told only [`Item::Wake`](crate::Item::Wake): a new
    /// language needs no mailbox, topic routing or timer bookkeeping of
    /// its own. Lua keeps its own because a message between processes of
    /// one VM never leaves the VM.
    fn keeps_mailboxes(&self) -> bool {
        false
    }
    /// The grants `program` (one of this front-end's) holds itself, which
    /// the core adds to its host's where it checks a grant for that
    /// program's code (`process.spawn`); `None` for a program that holds
    /// none (the default: a component's capabilities are its `wasi`).
    fn grants(&self, program: &Program) -> Option<Arc<crate::grants::Grants>> {
        let _ = program;
        None
    }
}

/// A language runtime living on one worker thread.
pub trait Frontend {
    /// Runs this front-end's processes that have pending items until they all
    /// wait or about `budget` resumptions have been made. Returns `true` when
    /// it stopped because of the budget (work remains).
    fn run(&mut self, budget: u32) -> bool;
}
