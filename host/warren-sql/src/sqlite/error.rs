//! SQLite errors as error kinds (modules.md §1's table), with the extended
//! result code in `details.code`.

use rusqlite::ErrorCode;
use rusqlite::ffi;
use warren_core::{ErrorKind, ProcError, Value};

use super::guard;
use crate::error::{err, invalid, with_code};

/// Maps a driver error. `SQLITE_INTERRUPT` comes out as `CANCELED`; the
/// caller turns it into `TIMEOUT` when its own deadline fired.
pub(crate) fn map(e: &rusqlite::Error) -> ProcError {
    let ffi_err = match e {
        rusqlite::Error::SqlInputError { error, .. } => Some(error),
        _ => e.sqlite_error(),
    };
    if let Some(f) = ffi_err {
        let (mut kind, retryable) = kind_of(f);
        let mut text = match e {
            rusqlite::Error::SqliteFailure(_, Some(msg)) => msg.clone(),
            rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
            _ => f.to_string(),
        };
        // A refusal of the authorizer: SQLITE_AUTH, or (inside a pragma's
        // table function) an error carrying its "not authorized".
        let refused =
            f.code == ErrorCode::AuthorizationForStatementDenied || text.contains("not authorized");
        if refused && let Some(why) = guard::take_refusal() {
            (kind, text) = (ErrorKind::PermissionDenied, why);
        } else if let Some(why) = limit_hit(f.code) {
            text = format!("{text}: {why}");
        }
        return with_code(
            err(kind, retryable, text),
            Value::Int(i64::from(f.extended_code)),
        );
    }
    use rusqlite::Error as E;
    match e {
        E::InvalidParameterCount(given, expected) => invalid(format!(
            "statement expects {expected} parameters but {given} were given"
        )),
        E::MultipleStatement => {
            invalid("only one statement is allowed here (several need execute without params)")
        }
        E::InvalidParameterName(_)
        | E::NulError(_)
        | E::ExecuteReturnedResults
        | E::InvalidQuery
        | E::InvalidColumnIndex(_)
        | E::InvalidColumnName(_) => invalid(e.to_string()),
        _ => err(ErrorKind::Internal, false, e.to_string()),
    }
}

/// Which bound of [`guard`] an error of `code` may come from, to name it
/// in the message.
fn limit_hit(code: ErrorCode) -> Option<String> {
    Some(match code {
        ErrorCode::TooBig => format!(
            "a string, blob or row holds at most {} bytes",
            guard::MAX_VALUE_BYTES
        ),
        ErrorCode::DiskFull => format!(
            "the temporary database holds at most {} bytes, an in-memory entry at most {}",
            guard::TEMP_DB_MAX_BYTES,
            guard::MEMORY_DB_MAX_BYTES
        ),
        ErrorCode::OutOfMemory => format!(
            "the SQLite engine holds at most {} bytes for every database of this runtime",
            guard::HEAP_HARD_LIMIT
        ),
        _ => return None,
    })
}

fn kind_of(f: &ffi::Error) -> (ErrorKind, bool) {
    match f.code {
        ErrorCode::ConstraintViolation => match f.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                (ErrorKind::AlreadyExists, false)
            }
            _ => (ErrorKind::Conflict, false),
        },
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => (ErrorKind::Unavailable, true),
        // SQLITE_ERROR: syntax errors, unknown tables and columns.
        ErrorCode::Unknown
        | ErrorCode::ParameterOutOfRange
        | ErrorCode::TypeMismatch
        | ErrorCode::TooBig
        | ErrorCode::ReadOnly => (ErrorKind::Invalid, false),
        ErrorCode::OperationInterrupted => (ErrorKind::Canceled, false),
        ErrorCode::AuthorizationForStatementDenied => (ErrorKind::PermissionDenied, false),
        // A bounded database is full (its page cap), or the disk is.
        ErrorCode::DiskFull => (ErrorKind::RateLimited, false),
        // The library's heap limit: others' statements may free memory.
        ErrorCode::OutOfMemory => (ErrorKind::RateLimited, true),
        _ => (ErrorKind::Internal, false),
    }
}

/// Which bound of a statement's own interrupted it.
#[derive(Copy, Clone, Debug)]
pub(crate) enum Interrupted {
    /// `query_timeout`, of this length, passed.
    Deadline(std::time::Duration),
    /// The caller's engine meter ran out, this much spent in all.
    Budget(std::time::Duration),
}

/// The error an interrupted statement reports: `TIMEOUT` when its deadline
/// fired, `RATE_LIMITED` when its caller's CPU budget ran out, else the
/// mapped error.
pub(crate) fn map_run(e: &rusqlite::Error, hit: Option<Interrupted>) -> ProcError {
    let interrupted = e.sqlite_error_code() == Some(ErrorCode::OperationInterrupted);
    let out = match hit {
        Some(Interrupted::Deadline(after)) if interrupted => crate::error::timed_out(after),
        Some(Interrupted::Budget(spent)) if interrupted => crate::error::over_budget(spent),
        _ => return map(e),
    };
    with_code(out, Value::Int(i64::from(ffi::SQLITE_INTERRUPT)))
}
