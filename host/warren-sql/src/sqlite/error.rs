//! SQLite errors as error kinds (modules.md §1's table), with the extended
//! result code in `details.code`.

use rusqlite::ErrorCode;
use rusqlite::ffi;
use warren_core::{ErrorKind, ProcError, Value};

use crate::error::{err, invalid, with_code};

/// Maps a driver error. `SQLITE_INTERRUPT` comes out as `CANCELED`; the
/// caller turns it into `TIMEOUT` when its own deadline fired.
pub(crate) fn map(e: &rusqlite::Error) -> ProcError {
    let ffi_err = match e {
        rusqlite::Error::SqlInputError { error, .. } => Some(error),
        _ => e.sqlite_error(),
    };
    if let Some(f) = ffi_err {
        let (kind, retryable) = kind_of(f);
        let text = match e {
            rusqlite::Error::SqliteFailure(_, Some(msg)) => msg.clone(),
            rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
            _ => f.to_string(),
        };
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
        _ => (ErrorKind::Internal, false),
    }
}

/// The error an interrupted statement reports: `TIMEOUT` when its deadline
/// fired, else the mapped error.
pub(crate) fn map_run(e: &rusqlite::Error, deadline_hit: Option<std::time::Duration>) -> ProcError {
    let interrupted = e.sqlite_error_code() == Some(ErrorCode::OperationInterrupted);
    match deadline_hit {
        Some(after) if interrupted => with_code(
            crate::error::timed_out(after),
            Value::Int(i64::from(ffi::SQLITE_INTERRUPT)),
        ),
        _ => map(e),
    }
}
