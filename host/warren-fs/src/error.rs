//! How I/O failures become the process-visible errors of the `fs` module.
//!
//! Every message names the path as the process wrote it and the operation;
//! none carries a host path: the texts come from this table or from the OS's
//! description of an error number, never from a path-bearing source.
//! cap-std reports a path leading out of the volume (a `..` or an absolute
//! symbolic link escaping the root, `EXDEV` from `openat2`'s
//! `RESOLVE_BENEATH`) as an [`io::ErrorKind::PermissionDenied`] error of its
//! own, without an OS error number: it becomes `PERMISSION_DENIED`.

use std::io;

use warren_core::{ErrorKind, ProcError, Value};

/// An `INVALID` error with `message`.
pub(crate) fn invalid(message: impl Into<String>) -> ProcError {
    ProcError::new(ErrorKind::Invalid, message)
}

/// An `INVALID` error for a result over `limit`, with details `{limit}`.
pub(crate) fn over_limit(message: impl Into<String>, limit: usize) -> ProcError {
    let mut err = invalid(message);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    err.details = Some(Value::Map(vec![(Value::str("limit"), Value::Int(limit))]));
    err
}

/// The error of `op` on `path` (as the process wrote it) failing with `err`.
pub(crate) fn io_error(op: &str, path: &str, err: &io::Error) -> ProcError {
    let (kind, reason) = classify(err);
    ProcError::new(kind, format!("{op} '{path}': {reason}"))
}

/// The kind and the host-path-free reason of an I/O error.
fn classify(err: &io::Error) -> (ErrorKind, String) {
    use io::ErrorKind as K;
    if err.raw_os_error() == Some(libc::ELOOP) {
        return (
            ErrorKind::Invalid,
            "too many levels of symbolic links".into(),
        );
    }
    let (kind, reason) = match err.kind() {
        K::NotFound => (ErrorKind::NotFound, "no such file or directory"),
        K::NotADirectory => (ErrorKind::NotFound, "not a directory"),
        K::AlreadyExists => (ErrorKind::AlreadyExists, "already exists"),
        K::PermissionDenied if err.raw_os_error().is_none() => {
            (ErrorKind::PermissionDenied, "path leads outside the volume")
        }
        K::PermissionDenied => (ErrorKind::PermissionDenied, "permission denied"),
        K::ReadOnlyFilesystem => (ErrorKind::PermissionDenied, "read-only file system"),
        K::DirectoryNotEmpty => (ErrorKind::Invalid, "directory not empty"),
        K::IsADirectory => (ErrorKind::Invalid, "is a directory"),
        K::InvalidFilename => (ErrorKind::Invalid, "name too long"),
        K::InvalidInput => (ErrorKind::Invalid, "invalid argument"),
        _ => return (ErrorKind::Internal, internal_reason(err)),
    };
    (kind, reason.to_string())
}

/// The reason of an unclassified error: the OS's text for an error number,
/// a fixed text otherwise (a custom error's text could name anything).
fn internal_reason(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(_) => format!("I/O error: {err}"),
        None => format!("I/O error ({})", err.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let e = |raw| io_error("op", "p", &io::Error::from_raw_os_error(raw)).kind;
        assert_eq!(e(libc::ENOENT), ErrorKind::NotFound);
        assert_eq!(e(libc::ENOTDIR), ErrorKind::NotFound);
        let notdir = io_error(
            "open",
            "a.txt/",
            &io::Error::from_raw_os_error(libc::ENOTDIR),
        );
        assert_eq!(notdir.message, "open 'a.txt/': not a directory");
        assert_eq!(e(libc::EEXIST), ErrorKind::AlreadyExists);
        assert_eq!(e(libc::EACCES), ErrorKind::PermissionDenied);
        assert_eq!(e(libc::ENOTEMPTY), ErrorKind::Invalid);
        assert_eq!(e(libc::ELOOP), ErrorKind::Invalid);
        assert_eq!(e(libc::EIO), ErrorKind::Internal);
        let escape = io::Error::new(io::ErrorKind::PermissionDenied, "/host/secret/path");
        let err = io_error("readfile", "x", &escape);
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        assert!(!err.message.contains("/host"), "{}", err.message);
    }
}
