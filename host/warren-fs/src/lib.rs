//! The volumes behind Warren's `fs` module, independent of any language.
//!
//! A [`Volume`] is a host directory opened once as a cap-std directory
//! handle and shared by every process granted it; every path a process
//! writes is normalised lexically ([`normalize`]) and then resolved beneath
//! that handle, so nothing outside the root is ever read, written, created
//! or removed, whatever symbolic links or concurrent renames exist on the
//! host. All calls block: the bindings run them on a blocking pool. Errors
//! are [`warren_core::ProcError`]s with the kinds of `modules.md` §3 and
//! never name a host path.

mod error;
mod file;
mod modes;
mod path;
mod stat;
mod volume;

pub use file::{File, MAX_READ_CHUNK};
pub use modes::{OpenMode, Whence, WriteMode, parse_mode};
pub use path::{MAX_PATH_BYTES, MAX_PATH_DEPTH, ROOT, normalize};
pub use stat::{Stat, TYPE_DIR, TYPE_FILE};
pub use volume::{
    MAX_DIR_ENTRIES, MAX_PREALLOC, MAX_READ_FILE, NEW_DIR_MODE, NEW_FILE_MODE, Volume,
};
