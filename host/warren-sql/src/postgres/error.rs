//! PostgreSQL errors as error kinds (modules.md §1's table), with the
//! SQLSTATE in `details.code`. Messages come from the server or the driver,
//! neither of which includes the password.

use deadpool_postgres::PoolError;
use warren_core::{ErrorKind, ProcError, Value};

use crate::error::{err, with_code};

/// SQLSTATE of a statement cancelled on request.
pub(crate) const QUERY_CANCELED: &str = "57014";

/// Maps a driver error.
pub(crate) fn map(e: &tokio_postgres::Error) -> ProcError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let (kind, retryable) = kind_of(code);
        let mut text = db.message().to_string();
        if let Some(detail) = db.detail() {
            text = format!("{text} ({detail})");
        }
        return with_code(err(kind, retryable, text), Value::str(code));
    }
    let text = e.to_string();
    if e.is_closed()
        || [
            "error connecting",
            "error communicating",
            "timeout waiting",
            "error performing TLS",
        ]
        .iter()
        .any(|p| text.starts_with(p))
    {
        return err(
            ErrorKind::Unavailable,
            true,
            format!("PostgreSQL unavailable: {text}"),
        );
    }
    if text.starts_with("error serializing") || text.contains("parameters but the statement") {
        return err(ErrorKind::Invalid, false, text);
    }
    err(ErrorKind::Internal, false, text)
}

/// The kind of a SQLSTATE, and whether retrying may help.
pub(crate) fn kind_of(code: &str) -> (ErrorKind, bool) {
    let class = code.get(..2).unwrap_or("");
    match (code, class) {
        ("23505", _) => (ErrorKind::AlreadyExists, false),
        (_, "23") => (ErrorKind::Conflict, false),
        ("40001" | "40P01", _) => (ErrorKind::Conflict, true),
        (QUERY_CANCELED, _) => (ErrorKind::Canceled, false),
        // Protocol violation: the parameters do not match the statement.
        ("08P01", _) => (ErrorKind::Invalid, false),
        ("57P01" | "57P02" | "57P03", _) | (_, "08" | "53") => (ErrorKind::Unavailable, true),
        ("3D000", _) | (_, "28") => (ErrorKind::Unavailable, false),
        // Syntax and access rules, data exceptions (out of range, bad
        // input), transaction state (read-only, aborted), savepoints,
        // cursor and statement names, unsupported features; program
        // limits (a row over what one may hold, see dial.rs; a statement
        // too complex), like SQLite's too-big values.
        (_, "42" | "22" | "25" | "3B" | "34" | "26" | "0A" | "2B" | "54") => {
            (ErrorKind::Invalid, false)
        }
        _ => (ErrorKind::Internal, false),
    }
}

/// Maps a failure to get a pooled connection.
pub(crate) fn map_pool(e: &PoolError, acquire_timeout: std::time::Duration) -> ProcError {
    match e {
        PoolError::Timeout(_) => acquire_timed_out(acquire_timeout),
        PoolError::Backend(e) => map(e),
        PoolError::Closed => err(ErrorKind::Unavailable, false, "the database is shut down"),
        other => err(ErrorKind::Internal, false, other.to_string()),
    }
}

/// No connection was lent within `acquire_timeout` (retryable).
pub(crate) fn acquire_timed_out(acquire_timeout: std::time::Duration) -> ProcError {
    err(
        ErrorKind::Unavailable,
        true,
        format!(
            "no PostgreSQL connection became free within acquire_timeout ({})",
            warren_core::duration::format(
                i64::try_from(acquire_timeout.as_nanos()).unwrap_or(i64::MAX)
            )
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_the_spec_kinds() {
        assert_eq!(kind_of("23505"), (ErrorKind::AlreadyExists, false));
        assert_eq!(kind_of("23503"), (ErrorKind::Conflict, false));
        assert_eq!(kind_of("40001"), (ErrorKind::Conflict, true));
        assert_eq!(kind_of("40P01"), (ErrorKind::Conflict, true));
        assert_eq!(kind_of("42601"), (ErrorKind::Invalid, false));
        assert_eq!(kind_of("22003"), (ErrorKind::Invalid, false));
        assert_eq!(kind_of("08006"), (ErrorKind::Unavailable, true));
        assert_eq!(kind_of("08P01"), (ErrorKind::Invalid, false));
        assert_eq!(kind_of("XX000"), (ErrorKind::Internal, false));
    }
}
