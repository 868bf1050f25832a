//! The ported `like`, `glob` and `instr` against SQLite's own, on random
//! patterns and strings (wildcards, sets, ranges, escapes, case, multibyte
//! and invalid UTF-8, NUL bytes, numbers, blobs): the same answer or the
//! same error, every time.

use proptest::prelude::*;
use rusqlite::Connection;
use rusqlite::types::Value;

/// SQLite's built-ins, and the ports (on a connection with the same
/// pattern length bound).
fn connections() -> (Connection, Connection) {
    super::super::heap::install();
    let builtin = Connection::open_in_memory().expect("open");
    let ported = Connection::open_in_memory().expect("open");
    for c in [&builtin, &ported] {
        c.set_limit(
            rusqlite::limits::Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH,
            40,
        )
        .expect("limit");
    }
    super::install(&ported).expect("install");
    (builtin, ported)
}

/// What `sql` gives with `args`: the value, or the error's text.
fn eval(c: &Connection, sql: &str, args: &[Value]) -> Result<Value, String> {
    c.query_row(sql, rusqlite::params_from_iter(args.iter()), |r| {
        r.get::<_, Value>(0)
    })
    .map_err(|e| e.to_string())
}

/// Bytes drawn mostly from pattern characters, letters of both cases and
/// multibyte characters, with some invalid UTF-8 and NULs.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    let atoms: Vec<&'static [u8]> = vec![
        b"%",
        b"_",
        b"*",
        b"?",
        b"[",
        b"]",
        b"^",
        b"-",
        b"a",
        b"A",
        b"b",
        b"B",
        b"z",
        b"x",
        b"\\",
        "é".as_bytes(),
        "É".as_bytes(),
        "中".as_bytes(),
        b"\xc3",
        b"\xa9",
        b"\xff",
        b"\x00",
        b"0",
    ];
    prop::collection::vec(prop::sample::select(atoms), 0..12).prop_map(|v| v.concat())
}

/// A value of any storage class, the text or blob one from `bytes`.
fn value(bytes: Vec<u8>, kind: u8) -> Value {
    match kind {
        0 => Value::Blob(bytes),
        1 => Value::Integer(bytes.len() as i64 * 7 - 3),
        2 => Value::Real(bytes.len() as f64 / 4.0),
        3 => Value::Null,
        _ => Value::Text(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

/// Text (possibly invalid UTF-8, as a blob cast to text).
fn texts(c: &Connection, sql: &str, p: &[u8], s: &[u8], e: Option<&[u8]>) -> Result<Value, String> {
    let mut args = vec![Value::Blob(p.to_vec()), Value::Blob(s.to_vec())];
    if let Some(e) = e {
        args.push(Value::Blob(e.to_vec()));
    }
    eval(c, sql, &args)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn like_and_glob_answer_as_sqlite_does(p in piece(), s in piece(), e in piece()) {
        let (builtin, ported) = connections();
        for sql in [
            "SELECT CAST(?2 AS TEXT) LIKE CAST(?1 AS TEXT)",
            "SELECT CAST(?2 AS TEXT) GLOB CAST(?1 AS TEXT)",
            "SELECT like(CAST(?1 AS TEXT), CAST(?2 AS TEXT))",
        ] {
            prop_assert_eq!(texts(&builtin, sql, &p, &s, None), texts(&ported, sql, &p, &s, None), "{}", sql);
        }
        let sql = "SELECT CAST(?2 AS TEXT) LIKE CAST(?1 AS TEXT) ESCAPE CAST(?3 AS TEXT)";
        prop_assert_eq!(texts(&builtin, sql, &p, &s, Some(&e)), texts(&ported, sql, &p, &s, Some(&e)));
        let one: &[u8] = e.get(..1).unwrap_or(b"\\");
        prop_assert_eq!(texts(&builtin, sql, &p, &s, Some(one)), texts(&ported, sql, &p, &s, Some(one)));
    }

    #[test]
    fn instr_answers_as_sqlite_does(h in piece(), n in piece(), kh in 0u8..6, kn in 0u8..6) {
        let (builtin, ported) = connections();
        let args = [value(h.clone(), kh), value(n.clone(), kn)];
        prop_assert_eq!(eval(&builtin, "SELECT instr(?1, ?2)", &args), eval(&ported, "SELECT instr(?1, ?2)", &args));
        let sql = "SELECT instr(CAST(?1 AS TEXT), CAST(?2 AS TEXT))";
        let raw = [Value::Blob(h), Value::Blob(n)];
        prop_assert_eq!(eval(&builtin, sql, &raw), eval(&ported, sql, &raw));
    }

    #[test]
    fn like_with_arguments_of_any_class_answers_as_sqlite_does(p in piece(), s in piece(), kp in 0u8..6, ks in 0u8..6) {
        let (builtin, ported) = connections();
        let args = [value(p, kp), value(s, ks)];
        for sql in ["SELECT ?2 LIKE ?1", "SELECT ?2 GLOB ?1"] {
            prop_assert_eq!(eval(&builtin, sql, &args), eval(&ported, sql, &args), "{}", sql);
        }
    }
}

#[test]
fn a_pattern_past_the_bound_and_a_long_escape_fail_as_sqlite_fails() {
    let (builtin, ported) = connections();
    for (sql, args) in [
        ("SELECT 'a' LIKE ?1", vec![Value::Text("a".repeat(41))]),
        (
            "SELECT 'a' LIKE 'a' ESCAPE ?1",
            vec![Value::Text("ab".into())],
        ),
        (
            "SELECT 'a' LIKE 'a' ESCAPE ?1",
            vec![Value::Text(String::new())],
        ),
    ] {
        let (b, p) = (eval(&builtin, sql, &args), eval(&ported, sql, &args));
        assert!(b.is_err(), "{sql}: {b:?}");
        assert_eq!(b, p, "{sql}");
    }
}

#[test]
fn an_interrupt_ends_a_long_match_at_once() {
    // The built-in would compare for seconds in one step; the port sees
    // the interrupt at its next check.
    let (_, ported) = connections();
    ported
        .set_limit(
            rusqlite::limits::Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH,
            1024,
        )
        .expect("limit");
    let handle = ported.get_interrupt_handle();
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        handle.interrupt();
    });
    let started = std::time::Instant::now();
    let got = ported.query_row(
        "SELECT replace(hex(zeroblob(4000000)), '0', 'a') LIKE ('%' || replace(hex(zeroblob(500)), '0', 'a') || 'b')",
        [],
        |r| r.get::<_, i64>(0),
    );
    t.join().expect("interrupter");
    let err = got.expect_err("interrupted");
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::OperationInterrupted),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
