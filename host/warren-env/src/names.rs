//! The shapes of names: public variable names (`[A-Za-z0-9_]+`), entry ids
//! (`<namespace>:<name>`) and the names code may pass to `env.get`, all
//! bounded by [`MAX_NAME_LEN`].

use warren_core::{ErrorKind, ProcError};

/// Bytes a name or an id may hold. Every lookup hashes the name, and a
/// message may quote it: a name of megabytes from a tenant would make both
/// costly, while real names are a few dozen bytes.
pub const MAX_NAME_LEN: usize = 256;

/// Whether `name` is a public variable name: `[A-Za-z0-9_]+`, at most
/// [`MAX_NAME_LEN`] bytes.
pub fn is_public_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `id` is an entry id: `<namespace>:<name>`, both parts non-empty,
/// no whitespace or control character, at most [`MAX_NAME_LEN`] bytes.
pub fn is_entry_id(id: &str) -> bool {
    let Some((namespace, name)) = id.split_once(':') else {
        return false;
    };
    !namespace.is_empty() && !name.is_empty() && is_token(id)
}

/// Checks a name code passes to `env.get`/`env.set`: `INVALID` when it is
/// empty, longer than [`MAX_NAME_LEN`] or holds whitespace or a control
/// character (it could be neither a public name nor an entry id).
pub fn check_name(name: &str) -> Result<(), ProcError> {
    if is_token(name) {
        return Ok(());
    }
    let why = if name.is_empty() {
        "is empty".to_owned()
    } else if name.len() > MAX_NAME_LEN {
        format!("is longer than {MAX_NAME_LEN} bytes")
    } else {
        "holds whitespace or a control character".to_owned()
    };
    Err(ProcError::new(
        ErrorKind::Invalid,
        format!("variable name {why}"),
    ))
}

/// Non-empty, bounded, without whitespace or control characters.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_NAME_LEN
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}
