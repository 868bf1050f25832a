//! The error values this crate returns, by kind (modules.md §1's table).
//!
//! Engine-specific mappings live beside each engine (`sqlite/error.rs`,
//! `postgres/error.rs`); they build their errors with these helpers so that
//! messages and `details` look alike. No message ever carries a password.

use warren_core::{ErrorKind, ProcError, Value};

/// An error of `kind` with `message`, retryable or not.
pub(crate) fn err(kind: ErrorKind, retryable: bool, message: impl Into<String>) -> ProcError {
    let mut e = ProcError::new(kind, message);
    e.retryable = retryable;
    e
}

/// `INVALID`, not retryable.
pub(crate) fn invalid(message: impl Into<String>) -> ProcError {
    err(ErrorKind::Invalid, false, message)
}

/// The error of every call on a transaction that has ended.
pub(crate) fn inactive() -> ProcError {
    invalid("transaction is not active")
}

/// `TIMEOUT` for a statement that ran past `query_timeout`.
pub(crate) fn timed_out(after: std::time::Duration) -> ProcError {
    err(
        ErrorKind::Timeout,
        true,
        format!(
            "statement interrupted after running longer than query_timeout ({})",
            warren_core::duration::format(i64::try_from(after.as_nanos()).unwrap_or(i64::MAX))
        ),
    )
}

/// `RATE_LIMITED` for a statement interrupted because its caller's CPU
/// budget ran out (see [`crate::EngineMeter`]), `spent` in the engine in all.
pub(crate) fn over_budget(spent: std::time::Duration) -> ProcError {
    err(
        ErrorKind::RateLimited,
        false,
        format!(
            "cpu budget exceeded: statement interrupted after the process spent {} in the SQL engine, past what was left of its cpu_budget",
            warren_core::duration::format(i64::try_from(spent.as_nanos()).unwrap_or(i64::MAX))
        ),
    )
}

/// Adds `details = {code = code}`.
pub(crate) fn with_code(mut e: ProcError, code: Value) -> ProcError {
    e.details = Some(Value::Map(vec![(Value::str("code"), code)]));
    e
}

/// Checks a savepoint name against `[A-Za-z0-9_]+`.
pub(crate) fn check_savepoint(name: &str) -> Result<(), ProcError> {
    let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "bad savepoint name '{name}': it must match [A-Za-z0-9_]+"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn savepoint_names_are_checked_and_quoted() {
        assert!(check_savepoint("a_1Z").is_ok());
        for bad in ["", "a b", "x;DROP", "é"] {
            let e = check_savepoint(bad).expect_err(bad);
            assert_eq!(e.kind, ErrorKind::Invalid);
            assert!(e.message.contains(&format!("'{bad}'")));
        }
    }
}
