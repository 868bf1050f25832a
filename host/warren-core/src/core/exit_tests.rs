//! What every front-end's exit becomes before watchers get a copy
//! (`deliverable`): a result past `max_message_bytes` is refused, an error
//! message is cut, oversized details are dropped.

use super::deliverable;
use crate::error::{ErrorKind, ProcError};
use crate::limits::MAX_EXIT_MESSAGE;
use crate::value::Value;

#[test]
fn a_result_past_the_message_limit_becomes_an_error_naming_its_size() {
    let big = Value::str("x".repeat(100));
    let err = deliverable(Ok(big.clone()), 50).expect_err("too large");
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert!(
        err.message
            .contains("a result of 105 bytes exceeds max_message_bytes (50)"),
        "{}",
        err.message
    );
    assert_eq!(deliverable(Ok(big.clone()), 105), Ok(big));
}

#[test]
fn an_error_keeps_at_most_the_exit_message_limit_cut_at_a_character() {
    // Two-byte characters straddling the limit: cut before the split one.
    let message = "é".repeat(MAX_EXIT_MESSAGE);
    let mut err = ProcError::new(ErrorKind::Internal, format!("a{message}"));
    err.details = Some(Value::str("y".repeat(100)));
    let out = deliverable(Err(err), 50).expect_err("an error");
    assert_eq!(out.message.len(), MAX_EXIT_MESSAGE - 1);
    assert!(out.message.starts_with("aé"));
    assert_eq!(out.details, None, "details past the limit are dropped");
    let mut small = ProcError::new(ErrorKind::Internal, "short");
    small.details = Some(Value::Int(1));
    let out = deliverable(Err(small.clone()), 50).expect_err("an error");
    assert_eq!((out.message, out.details), (small.message, small.details));
}
