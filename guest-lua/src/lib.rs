//! The Lua front-end of Warren.
//!
//! Each worker thread owns one Lua 5.4 VM per host; every Lua process on that
//! worker is a set of coroutines in it, driven by a kernel (`kernel/*.lua`, one chunk; `kernel.rs`)
//! whose run queue, channels and same-VM sends are native (`machine`). Isolation does not come from separate VMs but from the
//! environment: each process runs with its own `_ENV` whose fallback is a
//! read-only table of frozen libraries, the string metatable is locked,
//! `rawset`/`setmetatable`/`load` are guarded, and kernel state is held in
//! upvalues no process can reach. See `docs/architecture.md`.

mod alloc;
mod convert;
#[cfg(test)]
mod convert_props;
mod copy;
mod data;
mod emergency;
mod gctime;
mod host;
mod io;
mod json;
mod kernel;
mod machine;
mod modules;
mod outcome;
mod plain;
mod preempt;
mod program;
mod quota;
mod random;
mod resume;
mod step;
#[cfg(test)]
mod string_copies;
mod terminal;
mod timefmt;
mod timeparse;
mod traceback;
mod types;
#[cfg(test)]
mod vm_gc_tests;
#[cfg(test)]
mod vm_index_tests;
#[cfg(test)]
mod vm_string_tests;
mod watchdog;

pub use convert::{Budget, ConvertError, Converter, MAX_DEPTH, from_lua, to_lua};
pub use io::{Databases, Volumes};
pub use program::{
    LuaLibrary, LuaProgram, MODULES, check_source, lua_frontend, type_check, type_diagnostics,
};
pub use terminal::set_args as set_terminal_args;
pub use warren_lua_dialect::{Diagnostic as TypeDiagnostic, Severity};
