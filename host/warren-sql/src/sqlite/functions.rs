//! `like`, `glob` and `instr` on every connection, in place of SQLite's
//! built-ins, from [`super::pattern`]: the same answers and errors, but a
//! match that runs long asks the statement's bounds ([`bounded`]) and
//! ends with SQLite's `interrupted` error, which the caller reports as its
//! timeout, budget or stop, as for any other interrupted statement.
//!
//! One cost: SQLite uses an index for `LIKE 'abc%'` only with its own
//! `like`, so such a query now scans (metered, interruptible) instead.
//!
//! Guarantees: each function reads its arguments as the built-in does
//! (`sqlite3_value_text`, with its conversions; NULL in, NULL out) and
//! raises the built-in's errors; no Rust panic crosses into SQLite (the
//! callbacks do not panic: no indexing past what SQLite handed over).

use std::cell::RefCell;
use std::ffi::{CStr, c_int};

use rusqlite::{Connection, ffi};

use super::pattern::{self, GLOB, LIKE, Syntax};

thread_local! {
    /// The running statement's bound check ([`bounded`]), if it has one.
    static STOP: RefCell<Option<Box<dyn FnMut() -> bool>>> = const { RefCell::new(None) };
}

/// Runs `f` (which steps statements on this thread) with `stop` as the
/// check the functions make during a long match.
pub(crate) fn bounded<R>(stop: Box<dyn FnMut() -> bool>, f: impl FnOnce() -> R) -> R {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            STOP.with_borrow_mut(|s| *s = None);
        }
    }
    STOP.with_borrow_mut(|s| *s = Some(stop));
    let _clear = Clear;
    f()
}

/// Whether the running statement must stop: its bound check says so, or
/// its connection was interrupted.
fn should_stop(db: *mut ffi::sqlite3) -> bool {
    // SAFETY: `db` is the connection of the function being called.
    let interrupted = unsafe { ffi::sqlite3_is_interrupted(db) } != 0;
    interrupted || STOP.with_borrow_mut(|s| s.as_mut().is_some_and(|f| f()))
}

type Callback =
    unsafe extern "C" fn(*mut ffi::sqlite3_context, c_int, *mut *mut ffi::sqlite3_value);

/// Registers the functions on `conn`.
pub(crate) fn install(conn: &Connection) -> rusqlite::Result<()> {
    let flags = ffi::SQLITE_UTF8 | ffi::SQLITE_DETERMINISTIC | ffi::SQLITE_INNOCUOUS;
    let all: [(&CStr, c_int, Callback); 4] = [
        (c"like", 2, like),
        (c"like", 3, like),
        (c"glob", 2, glob),
        (c"instr", 2, instr),
    ];
    for (name, n, f) in all {
        // SAFETY: the handle is the open connection's; the name is a C
        // string; the callbacks have SQLite's signature and no user data.
        let rc = unsafe {
            ffi::sqlite3_create_function_v2(
                conn.handle(),
                name.as_ptr(),
                n,
                flags,
                std::ptr::null_mut(),
                Some(f),
                None,
                None,
                None,
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None));
        }
    }
    Ok(())
}

/// The text of a value as `sqlite3_value_text` gives it, with its length
/// (`None` for NULL, or when SQLite could not make it).
///
/// # Safety
///
/// `v` is a value SQLite handed to the running function.
unsafe fn text<'a>(v: *mut ffi::sqlite3_value) -> Option<&'a [u8]> {
    // SAFETY: text first, then bytes (SQLite's order); the bytes live
    // until the function returns.
    unsafe {
        let p = ffi::sqlite3_value_text(v);
        if p.is_null() {
            return None;
        }
        let n = usize::try_from(ffi::sqlite3_value_bytes(v)).unwrap_or(0);
        Some(std::slice::from_raw_parts(p, n))
    }
}

/// The function's arguments.
///
/// # Safety
///
/// As SQLite calls a function: `argv` holds `argc` values.
unsafe fn args<'a>(
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) -> &'a [*mut ffi::sqlite3_value] {
    // SAFETY: see above.
    unsafe { std::slice::from_raw_parts(argv, usize::try_from(argc).unwrap_or(0)) }
}

/// Sets error `message` as the function's result.
///
/// # Safety
///
/// `ctx` is the running function's context.
unsafe fn fail(ctx: *mut ffi::sqlite3_context, message: &CStr) {
    // SAFETY: see above; -1: the message is NUL-terminated.
    unsafe { ffi::sqlite3_result_error(ctx, message.as_ptr(), -1) }
}

/// Characters in `s` as `sqlite3Utf8CharLen` counts them.
fn char_len(s: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < s.len() && s[i] != 0 {
        let lead = s[i];
        i += 1;
        if lead >= 0xc0 {
            while i < s.len() && s[i] & 0xc0 == 0x80 {
                i += 1;
            }
        }
        n += 1;
    }
    n
}

/// `like(pattern, string[, escape])` (SQLite's `likeFunc`).
unsafe extern "C" fn like(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: called by SQLite as a function of 2 or 3 arguments.
    unsafe { compare(ctx, args(argc, argv), LIKE) }
}

/// `glob(pattern, string)` (SQLite's `likeFunc` with GLOB's syntax).
unsafe extern "C" fn glob(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: called by SQLite as a function of 2 arguments.
    unsafe { compare(ctx, args(argc, argv), GLOB) }
}

/// The body of `likeFunc`: the pattern's length bound, the escape, then
/// the match.
///
/// # Safety
///
/// As SQLite calls a function; `args` are its arguments (2 or 3).
unsafe fn compare(
    ctx: *mut ffi::sqlite3_context,
    args: &[*mut ffi::sqlite3_value],
    syntax: Syntax,
) {
    // SAFETY: see above; the handle is the context's connection.
    unsafe {
        let (Some(&p), Some(&s)) = (args.first(), args.get(1)) else {
            return;
        };
        let (pattern, string) = (text(p), text(s));
        let db = ffi::sqlite3_context_db_handle(ctx);
        let limit = ffi::sqlite3_limit(db, ffi::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, -1);
        let n_pat = pattern.map_or(0, <[u8]>::len);
        if n_pat > usize::try_from(limit).unwrap_or(0) {
            return fail(ctx, c"LIKE or GLOB pattern too complex");
        }
        let mut syntax = syntax;
        let escape = match args.get(2) {
            Some(&e) => {
                let Some(e) = text(e) else { return };
                if char_len(e) != 1 {
                    return fail(ctx, c"ESCAPE expression must be a single character");
                }
                let c = pattern::first_char(e);
                if c == syntax.all {
                    syntax.all = 0;
                }
                if c == syntax.one {
                    syntax.one = 0;
                }
                c
            }
            None => syntax.set,
        };
        let (Some(pattern), Some(string)) = (pattern, string) else {
            return;
        };
        match pattern::matches(pattern, string, syntax, escape, &mut || should_stop(db)) {
            Ok(m) => ffi::sqlite3_result_int(ctx, c_int::from(m)),
            Err(pattern::Stopped) => ffi::sqlite3_result_error_code(ctx, ffi::SQLITE_INTERRUPT),
        }
    }
}

/// `instr(haystack, needle)` (SQLite's `instrFunc`): blobs compared as
/// bytes when both are blobs, else both as text.
unsafe extern "C" fn instr(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: called by SQLite as a function of 2 arguments; a blob's
    // bytes, like a text's, live until the function returns.
    unsafe {
        let args = args(argc, argv);
        let (Some(&h), Some(&n)) = (args.first(), args.get(1)) else {
            return;
        };
        let (th, tn) = (ffi::sqlite3_value_type(h), ffi::sqlite3_value_type(n));
        if th == ffi::SQLITE_NULL || tn == ffi::SQLITE_NULL {
            return;
        }
        if ffi::sqlite3_value_bytes(n) <= 0 {
            return ffi::sqlite3_result_int64(ctx, 1);
        }
        let both_blobs = th == ffi::SQLITE_BLOB && tn == ffi::SQLITE_BLOB;
        let (haystack, needle) = if both_blobs {
            (blob(h), blob(n))
        } else {
            // A blob beside a text is read as text, as SQLite does (on a
            // copy, so the argument itself keeps its type).
            (text_copy(h, th), text_copy(n, tn))
        };
        match (haystack, needle) {
            (Some(h), Some(n)) => {
                ffi::sqlite3_result_int64(ctx, pattern::instr(h.bytes(), n.bytes(), !both_blobs));
            }
            _ => ffi::sqlite3_result_error_nomem(ctx),
        }
    }
}

/// A value's bytes, from the argument itself or from a copy SQLite made
/// (freed on drop).
enum Bytes<'a> {
    Borrowed(&'a [u8]),
    Copied(*mut ffi::sqlite3_value, &'a [u8]),
}

impl Bytes<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Bytes::Borrowed(b) | Bytes::Copied(_, b) => b,
        }
    }
}

impl Drop for Bytes<'_> {
    fn drop(&mut self) {
        if let Bytes::Copied(v, _) = self {
            // SAFETY: a copy `sqlite3_value_dup` made, freed once.
            unsafe { ffi::sqlite3_value_free(*v) }
        }
    }
}

/// A blob argument's bytes.
///
/// # Safety
///
/// `v` is an argument of the running function.
unsafe fn blob<'a>(v: *mut ffi::sqlite3_value) -> Option<Bytes<'a>> {
    // SAFETY: blob first, then bytes; an empty blob may be a null pointer.
    unsafe {
        let p = ffi::sqlite3_value_blob(v).cast::<u8>();
        let n = usize::try_from(ffi::sqlite3_value_bytes(v)).unwrap_or(0);
        if p.is_null() {
            return (n == 0).then_some(Bytes::Borrowed(&[]));
        }
        Some(Bytes::Borrowed(std::slice::from_raw_parts(p, n)))
    }
}

/// An argument as text: in place unless it is a blob, which is read as
/// text on a copy (`sqlite3_value_dup`), as `instrFunc` does.
///
/// # Safety
///
/// As [`blob`]; `ty` is its type.
unsafe fn text_copy<'a>(v: *mut ffi::sqlite3_value, ty: c_int) -> Option<Bytes<'a>> {
    // SAFETY: see above; the copy is freed by the `Bytes` that holds it.
    unsafe {
        if ty != ffi::SQLITE_BLOB {
            return text(v).map(Bytes::Borrowed);
        }
        let copy = ffi::sqlite3_value_dup(v);
        if copy.is_null() {
            return None;
        }
        match text(copy) {
            Some(t) => Some(Bytes::Copied(copy, t)),
            None => {
                ffi::sqlite3_value_free(copy);
                None
            }
        }
    }
}

#[cfg(test)]
#[path = "functions_tests.rs"]
mod tests;
