//! The errors of the client, with the kinds of modules.md §2's table.
//!
//! Every failure leaves this crate as a [`ProcError`] of one kind:
//! `PERMISSION_DENIED` (not granted), `INVALID` (bad argument, body over the
//! limit), `UNAVAILABLE` (DNS, connection, TLS, too many redirects;
//! retryable), `TIMEOUT` (retryable) or `INTERNAL`. Messages quote the URL
//! through [`redact`], so a password given in a URL's userinfo never appears
//! in one; the `auth` option's password is never quoted at all.

use std::error::Error as StdError;

use url::Url;
use warren_core::{ErrorKind, ProcError, Value};

use crate::resolve::DeniedAddress;

/// `INVALID`: a bad URL, method or option.
pub(crate) fn invalid(message: impl Into<String>) -> ProcError {
    ProcError::new(ErrorKind::Invalid, message)
}

/// `PERMISSION_DENIED`: a destination, address, socket or insecure TLS use
/// that is not granted.
pub(crate) fn denied(message: impl Into<String>) -> ProcError {
    ProcError::new(ErrorKind::PermissionDenied, message)
}

/// `UNAVAILABLE`, retryable.
pub(crate) fn unavailable(message: impl Into<String>) -> ProcError {
    retryable(ProcError::new(ErrorKind::Unavailable, message))
}

/// `TIMEOUT`, retryable.
pub(crate) fn timeout(message: impl Into<String>) -> ProcError {
    retryable(ProcError::new(ErrorKind::Timeout, message))
}

/// `INTERNAL`.
pub(crate) fn internal(message: impl Into<String>) -> ProcError {
    ProcError::new(ErrorKind::Internal, message)
}

fn retryable(mut err: ProcError) -> ProcError {
    err.retryable = true;
    err
}

/// `INVALID` for a body beyond `limit` bytes, with details `{limit = n}`.
pub(crate) fn body_too_large(url: &Url, limit: u64) -> ProcError {
    let mut err = invalid(format!(
        "response body of {} exceeds max_response_body ({limit} bytes)",
        redact(url)
    ));
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    err.details = Some(Value::Map(vec![(Value::str("limit"), Value::Int(limit))]));
    err
}

/// The URL as messages may quote it: without the password of its userinfo.
pub(crate) fn redact(url: &Url) -> String {
    if url.password().is_none() {
        return cut(url.as_str(), MAX_SHOWN_URL);
    }
    let mut shown = url.clone();
    // Only fails for URLs that cannot have a password, which this one has.
    let _ = shown.set_password(Some("***"));
    cut(shown.as_str(), MAX_SHOWN_URL)
}

/// Most characters of a URL a message quotes, and of a method, header,
/// cookie or file name ([`MAX_SHOWN`]): a message quoted the caller's text
/// whole, escaped, so 1 MB of control bytes made a 5 MB error, built on
/// the host and delivered to the process (past its limit at 5 MB).
const MAX_SHOWN_URL: usize = 256;
const MAX_SHOWN: usize = 64;

/// `text`, cut to `most` characters with the length of the rest said.
fn cut(text: &str, most: usize) -> String {
    match text.char_indices().nth(most) {
        Some((at, _)) => format!("{}... ({} bytes in all)", &text[..at], text.len()),
        None => text.to_owned(),
    }
}

/// A caller's name or value as a message quotes it: `{:?}` of at most
/// [`MAX_SHOWN`] characters.
pub(crate) fn quoted(text: &str) -> String {
    match text.char_indices().nth(MAX_SHOWN) {
        Some((at, _)) => format!("{:?}... ({} bytes in all)", &text[..at], text.len()),
        None => format!("{text:?}"),
    }
}

/// A URL that did not parse, as messages may quote it: any userinfo
/// (`user:pass@`) replaced by `***@`.
pub(crate) fn redact_text(text: &str) -> String {
    let start = text.find("://").map_or(0, |i| i + 3);
    let rest = &text[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => cut(
            &format!("{}***{}", &text[..start], &rest[at..]),
            MAX_SHOWN_URL,
        ),
        None => cut(text, MAX_SHOWN_URL),
    }
}

/// The error of a failed exchange with `url`, by what reqwest reports.
pub(crate) fn from_reqwest(err: &reqwest::Error, url: &Url) -> ProcError {
    if let Some(denied_addr) = find_source::<DeniedAddress>(err) {
        return denied(denied_addr.to_string());
    }
    let shown = redact(url);
    let cause = chain_text(err);
    if err.is_timeout() {
        timeout(format!("request to {shown} timed out: {cause}"))
    } else if err.is_connect() {
        unavailable(format!("cannot connect to {shown}: {cause}"))
    } else if err.is_request() || err.is_body() || err.is_decode() {
        // Without decompression, a body that cannot be decoded is a
        // connection that failed mid-message.
        unavailable(format!("request to {shown} failed: {cause}"))
    } else if err.is_builder() {
        invalid(format!("bad request to {shown}: {cause}"))
    } else {
        internal(format!("request to {shown} failed: {cause}"))
    }
}

/// The first error of type `T` in `err`'s chain of sources.
fn find_source<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The messages of `err`'s sources, innermost last (reqwest's own message
/// is only "error sending request"). Sources never hold the URL's password:
/// reqwest strips the userinfo into an Authorization header.
fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = err.source();
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    if parts.is_empty() {
        return "unknown error".into();
    }
    parts.join(": ")
}
