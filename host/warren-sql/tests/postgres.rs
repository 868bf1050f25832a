//! PostgreSQL, for real: a throwaway cluster started by the test binary.

mod cluster;
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{assert_kind, code, eventually, limits, rows, temp_path};
use tokio::runtime::Handle;
use warren_core::{ErrorKind, Pid, Value};
use warren_sql::{Database, DbConfig, DbKind, Isolation, Param, PgConfig, TxOptions};

fn base(name: &str) -> PgConfig {
    let c = cluster::cluster();
    PgConfig {
        host: c.host().to_owned(),
        port: c.port,
        database: name.to_owned(),
        username: "warren".into(),
        password: "secret-not-shown".into(),
        ..PgConfig::default()
    }
}

/// A fresh database `name` on the cluster, and its config.
async fn config(name: &str) -> PgConfig {
    let admin = open(base("postgres"));
    admin
        .execute(0, &format!("CREATE DATABASE {name}"), vec![])
        .await
        .expect("create database");
    admin.shutdown().await;
    base(name)
}

fn open(cfg: PgConfig) -> Arc<Database> {
    Database::open("pg", DbConfig::Postgres(cfg), Handle::current()).expect("open")
}

fn one(v: &Value) -> &Value {
    &rows(v)[0]
}

fn int(v: &Value, key: &str) -> i64 {
    match v.get(key) {
        Some(Value::Int(n)) => *n,
        other => panic!("{key}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn column_types_and_params() {
    let db = open(config("types").await);
    assert_eq!(db.kind(), DbKind::Postgres);
    db.execute(
        1,
        "CREATE TYPE mood AS ENUM ('happy', 'sad');
         CREATE TABLE t (i integer, b bigint, s smallint, r real, d double precision,
           n numeric(12,4), t text, v varchar(10), j json, jb jsonb, u uuid, e mood,
           by bytea, bo boolean, ts timestamp, tz timestamptz, dt date, ti time,
           iv interval, nul text)",
        vec![],
    )
    .await
    .expect("schema");
    let r = db
        .execute(
            1,
            "INSERT INTO t (i, b, s, r, d, n, t, v, j, jb, u, e, by, bo, ts, tz, dt, ti, iv, nul)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                     $17, $18, $19, $20)",
            vec![
                Param::Int(7),
                Param::Int(1 << 40),
                Param::Int(-3),
                Param::Float(1.5),
                Param::Float(-2.25),
                Param::Int(-12345),
                Param::text("héllo"),
                Param::text("v"),
                Param::text("{\"a\": 1}"),
                Param::text("{\"b\": [1, 2]}"),
                Param::text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                Param::text("sad"),
                Param::Blob(vec![0, 1, 255]),
                Param::Bool(true),
                Param::text("2026-03-01 09:30:00.75"),
                Param::text("2026-03-01 10:30:00+01"),
                Param::text("2026-03-01"),
                Param::text("13:00:05"),
                Param::text("1 day 02:00:00"),
                Param::Null,
            ],
        )
        .await
        .expect("insert");
    assert_eq!((r.rows_affected, r.last_insert_id), (1, 0));
    let v = db
        .query(1, "SELECT * FROM t", vec![], &limits())
        .await
        .expect("select");
    let row = one(&v);
    let want = [
        ("i", Value::Int(7)),
        ("b", Value::Int(1 << 40)),
        ("s", Value::Int(-3)),
        ("r", Value::Float(1.5)),
        ("d", Value::Float(-2.25)),
        ("n", Value::str("-12345.0000")),
        ("t", Value::str("héllo")),
        ("v", Value::str("v")),
        ("j", Value::str("{\"a\": 1}")),
        ("jb", Value::str("{\"b\": [1, 2]}")),
        ("u", Value::str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
        ("e", Value::str("sad")),
        ("by", Value::Str(vec![0, 1, 255])),
        ("bo", Value::Bool(true)),
        ("ts", Value::str("2026-03-01T09:30:00Z")),
        ("tz", Value::str("2026-03-01T09:30:00Z")),
        ("dt", Value::str("2026-03-01T00:00:00Z")),
        ("ti", Value::str("13:00:05")),
        ("iv", Value::str("1 day 02:00:00")),
    ];
    for (k, expected) in want {
        assert_eq!(row.get(k), Some(&expected), "column {k}");
    }
    assert_eq!(row.get("nul"), None, "NULL is absent");

    let v = db
        .query(
            1,
            "SELECT 'NaN'::numeric AS nan, 0.00012::numeric AS small, \
             123456789012345678901234567890.5::numeric AS big, $1::bool AS p, 1 AS x, 2 AS x",
            vec![Param::Bool(false)],
            &limits(),
        )
        .await
        .expect("numerics");
    let row = one(&v);
    assert_eq!(row.get("nan"), Some(&Value::str("NaN")));
    assert_eq!(row.get("small"), Some(&Value::str("0.00012")));
    assert_eq!(
        row.get("big"),
        Some(&Value::str("123456789012345678901234567890.5"))
    );
    assert_eq!(row.get("p"), Some(&Value::Bool(false)));
    assert_eq!(row.get("x"), Some(&Value::Int(2)), "last duplicate wins");
    let none = db
        .query(1, "SELECT * FROM t WHERE i < 0", vec![], &limits())
        .await
        .expect("none");
    assert_eq!(none, Value::Array(vec![]));

    // int8 parameter into an integer column: the server's cast applies,
    // and a value out of its range is INVALID.
    let e = assert_kind(
        db.execute(
            1,
            "INSERT INTO t (i) VALUES ($1)",
            vec![Param::Int(1 << 40)],
        )
        .await,
        ErrorKind::Invalid,
        false,
    );
    assert_eq!(code(&e), Value::str("22003"));
    let upd = db
        .execute(
            1,
            "UPDATE t SET i = $1 WHERE i = $2",
            vec![Param::Int(8), Param::Int(7)],
        )
        .await
        .expect("update");
    assert_eq!(upd.rows_affected, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_batches_and_prepare() {
    let db = open(config("errors").await);
    let r = db
        .execute(
            1,
            "CREATE TABLE p (id int PRIMARY KEY, name text UNIQUE);
             CREATE TABLE c (id int, p int REFERENCES p(id));
             INSERT INTO p VALUES (1, 'a'), (2, 'b'), (3, 'c')",
            vec![],
        )
        .await
        .expect("batch");
    assert_eq!(r.rows_affected, 3, "the last statement's count");
    let e = assert_kind(
        db.execute(1, "INSERT INTO p VALUES (1, 'z')", vec![]).await,
        ErrorKind::AlreadyExists,
        false,
    );
    assert_eq!(code(&e), Value::str("23505"));
    let e = assert_kind(
        db.execute(
            1,
            "INSERT INTO c VALUES ($1, $2)",
            vec![Param::Int(1), Param::Int(99)],
        )
        .await,
        ErrorKind::Conflict,
        false,
    );
    assert_eq!(code(&e), Value::str("23503"));
    let e = assert_kind(
        db.query(1, "SELEC 1", vec![], &limits()).await,
        ErrorKind::Invalid,
        false,
    );
    assert_eq!(code(&e), Value::str("42601"));
    assert_kind(
        db.query(1, "SELECT * FROM nope", vec![], &limits()).await,
        ErrorKind::Invalid,
        false,
    );
    assert_kind(
        db.query(1, "SELECT nope FROM p", vec![], &limits()).await,
        ErrorKind::Invalid,
        false,
    );
    assert_kind(
        db.prepare_check(1, "SELECT nope FROM p").await,
        ErrorKind::Invalid,
        false,
    );
    db.prepare_check(1, "SELECT name FROM p WHERE id = $1")
        .await
        .expect("valid");
    assert_kind(
        db.query(1, "SELECT $1::int", vec![], &limits()).await,
        ErrorKind::Invalid,
        false,
    );
    let small = warren_sql::ResultLimits::bytes(500);
    let e = assert_kind(
        db.query(
            1,
            "SELECT g FROM generate_series(1, 1000) g",
            vec![],
            &small,
        )
        .await,
        ErrorKind::Invalid,
        false,
    );
    assert_eq!(
        e.details.expect("details").get("limit"),
        Some(&Value::Int(500))
    );
    let v = db
        .query(1, "SELECT count(*) AS n FROM p", vec![], &small)
        .await
        .expect("usable");
    assert_eq!(int(one(&v), "n"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_isolation_savepoints_and_read_only() {
    let db = open(config("tx").await);
    db.execute(1, "CREATE TABLE a (x int)", vec![])
        .await
        .expect("schema");
    let levels = [
        (Isolation::Default, "read committed"),
        (Isolation::ReadUncommitted, "read uncommitted"),
        (Isolation::ReadCommitted, "read committed"),
        (Isolation::RepeatableRead, "repeatable read"),
        (Isolation::Serializable, "serializable"),
    ];
    for (level, shown) in levels {
        let tx = db
            .begin(
                1,
                TxOptions {
                    isolation: level,
                    read_only: false,
                },
            )
            .await
            .expect("begin");
        let v = tx
            .query("SHOW transaction_isolation", vec![], &limits())
            .await
            .expect("show");
        assert_eq!(
            one(&v).get("transaction_isolation"),
            Some(&Value::str(shown))
        );
        tx.rollback().await.expect("rollback");
    }
    let wc = TxOptions {
        isolation: Isolation::WriteCommitted,
        read_only: false,
    };
    assert_kind(db.begin(1, wc).await, ErrorKind::Invalid, false);

    let ro = TxOptions {
        isolation: Isolation::Default,
        read_only: true,
    };
    let tx = db.begin(1, ro).await.expect("ro");
    let e = assert_kind(
        tx.execute("INSERT INTO a VALUES (1)", vec![]).await,
        ErrorKind::Invalid,
        false,
    );
    assert_eq!(code(&e), Value::str("25006"));
    tx.rollback().await.expect("rb");

    let tx = db.begin(1, TxOptions::default()).await.expect("begin");
    assert_eq!(tx.db_kind(), DbKind::Postgres);
    tx.execute("INSERT INTO a VALUES ($1)", vec![Param::Int(1)])
        .await
        .expect("1");
    tx.savepoint("s1").await.expect("sp");
    tx.execute("INSERT INTO a VALUES (2)", vec![])
        .await
        .expect("2");
    tx.rollback_to("s1").await.expect("rollback_to");
    tx.release("s1").await.expect("release");
    let e = assert_kind(tx.savepoint("no;way").await, ErrorKind::Invalid, false);
    assert!(e.message.contains("'no;way'"));
    // An error inside a savepoint, undone by rollback_to, still commits.
    tx.savepoint("s2").await.expect("sp2");
    assert_kind(tx.execute("SELEC", vec![]).await, ErrorKind::Invalid, false);
    tx.rollback_to("s2").await.expect("undo");
    tx.commit().await.expect("commit");
    assert_kind(
        tx.query("SELECT 1", vec![], &limits()).await,
        ErrorKind::Invalid,
        false,
    );
    let v = db
        .query(
            2,
            "SELECT array_agg(x)::text AS xs FROM a",
            vec![],
            &limits(),
        )
        .await
        .expect("q");
    assert_eq!(one(&v).get("xs"), Some(&Value::str("{1}")));

    // A commit after a failed statement is refused and rolled back.
    let tx = db.begin(1, TxOptions::default()).await.expect("begin");
    tx.execute("INSERT INTO a VALUES (5)", vec![])
        .await
        .expect("5");
    assert_kind(tx.execute("SELEC", vec![]).await, ErrorKind::Invalid, false);
    assert_kind(tx.commit().await, ErrorKind::Invalid, false);
    let v = db
        .query(2, "SELECT count(*) AS n FROM a", vec![], &limits())
        .await
        .expect("q");
    assert_eq!(int(one(&v), "n"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serialization_failure_is_retryable_conflict() {
    let db = open(config("serial").await);
    db.execute(
        1,
        "CREATE TABLE s (k int, v int); INSERT INTO s VALUES (1, 0), (2, 0)",
        vec![],
    )
    .await
    .expect("schema");
    let ser = TxOptions {
        isolation: Isolation::Serializable,
        read_only: false,
    };
    let t1 = db.begin(1, ser).await.expect("t1");
    let t2 = db.begin(2, ser).await.expect("t2");
    t1.query("SELECT sum(v) AS n FROM s", vec![], &limits())
        .await
        .expect("r1");
    t2.query("SELECT sum(v) AS n FROM s", vec![], &limits())
        .await
        .expect("r2");
    t1.execute("UPDATE s SET v = 1 WHERE k = 1", vec![])
        .await
        .expect("w1");
    t2.execute("UPDATE s SET v = 1 WHERE k = 2", vec![])
        .await
        .expect("w2");
    t1.commit().await.expect("c1");
    let e = assert_kind(t2.commit().await, ErrorKind::Conflict, true);
    assert_eq!(code(&e), Value::str("40001"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_exhaustion_and_dropped_transaction() {
    let mut cfg = config("pool").await;
    cfg.max_open = 1;
    cfg.acquire_timeout = Duration::from_millis(300);
    let db = open(cfg);
    db.execute(1, "CREATE TABLE d (x int)", vec![])
        .await
        .expect("schema");
    let tx = db.begin(1, TxOptions::default()).await.expect("begin");
    tx.execute("INSERT INTO d VALUES (1)", vec![])
        .await
        .expect("insert");
    let e = assert_kind(
        db.query(2, "SELECT 1", vec![], &limits()).await,
        ErrorKind::Unavailable,
        true,
    );
    assert!(e.message.contains("acquire_timeout"), "{e}");
    let st = db.stats();
    assert_eq!(st.get("in_use"), Some(&Value::Int(1)));
    assert_eq!(st.get("max_open_connections"), Some(&Value::Int(1)));
    assert!(matches!(st.get("wait_count"), Some(Value::Int(n)) if *n >= 1));
    drop(tx);
    let idle = eventually(Duration::from_secs(5), || async {
        let st = db.stats();
        st.get("idle") == Some(&Value::Int(1)) && st.get("in_use") == Some(&Value::Int(0))
    })
    .await;
    assert!(idle, "connection returned: {:?}", db.stats());
    let v = db
        .query(2, "SELECT count(*) AS n FROM d", vec![], &limits())
        .await
        .expect("q");
    assert_eq!(int(one(&v), "n"), 0, "rolled back");
    db.shutdown().await;
    assert_kind(
        db.query(2, "SELECT 1", vec![], &limits()).await,
        ErrorKind::Unavailable,
        false,
    );
}

async fn sleepers(db: &Database) -> i64 {
    let v = db
        .query(
            9,
            "SELECT count(*) AS n FROM pg_stat_activity WHERE state = 'active' \
             AND query LIKE '%pg_sleep(10)%' AND pid <> pg_backend_pid()",
            vec![],
            &limits(),
        )
        .await
        .expect("activity");
    int(one(&v), "n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_statement_is_cancelled_on_the_server() {
    let db = open(config("cancel").await);
    let d = db.clone();
    let long =
        tokio::spawn(async move { d.query(1, "SELECT pg_sleep(10)", vec![], &limits()).await });
    assert!(
        eventually(Duration::from_secs(5), || async {
            sleepers(&db).await == 1
        })
        .await
    );
    long.abort();
    assert!(
        eventually(Duration::from_secs(5), || async {
            sleepers(&db).await == 0
        })
        .await,
        "the statement is cancelled"
    );
    // Inside a transaction: cancelled, rolled back, connection returned.
    db.execute(1, "CREATE TABLE k (x int)", vec![])
        .await
        .expect("schema");
    let tx = db.begin(2, TxOptions::default()).await.expect("begin");
    tx.execute("INSERT INTO k VALUES (1)", vec![])
        .await
        .expect("insert");
    let t = tx.clone();
    let long = tokio::spawn(async move { t.query("SELECT pg_sleep(10)", vec![], &limits()).await });
    assert!(
        eventually(Duration::from_secs(5), || async {
            sleepers(&db).await == 1
        })
        .await
    );
    long.abort();
    assert!(
        eventually(Duration::from_secs(5), || async {
            sleepers(&db).await == 0
        })
        .await
    );
    assert_kind(
        tx.query("SELECT 1", vec![], &limits()).await,
        ErrorKind::Invalid,
        false,
    );
    let v = db
        .query(3, "SELECT count(*) AS n FROM k", vec![], &limits())
        .await
        .expect("q");
    assert_eq!(int(one(&v), "n"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_timeout_cancels_with_timeout() {
    let mut cfg = config("timeout").await;
    cfg.query_timeout = Some(Duration::from_millis(200));
    let db = open(cfg);
    let start = std::time::Instant::now();
    let e = assert_kind(
        db.query(1, "SELECT pg_sleep(5)", vec![], &limits()).await,
        ErrorKind::Timeout,
        true,
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(code(&e), Value::str("57014"));
    let v = db
        .query(1, "SELECT 1 AS n", vec![], &limits())
        .await
        .expect("usable");
    assert_eq!(int(one(&v), "n"), 1);
    let tx = db.begin(1, TxOptions::default()).await.expect("begin");
    assert_kind(
        tx.execute("SELECT pg_sleep(5)", vec![Param::Null]).await,
        ErrorKind::Invalid,
        false,
    );
    tx.rollback().await.expect("rb");
    let tx = db.begin(1, TxOptions::default()).await.expect("begin");
    assert_kind(
        tx.execute("SELECT pg_sleep(5)", vec![]).await,
        ErrorKind::Timeout,
        true,
    );
    tx.rollback().await.expect("rb");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_settings() {
    // Unreachable server.
    let dir = temp_path("nosock");
    let cfg = PgConfig {
        host: dir.to_string_lossy().into_owned(),
        port: 5999,
        database: "x".into(),
        username: "warren".into(),
        password: "hunter2".into(),
        acquire_timeout: Duration::from_secs(2),
        ..PgConfig::default()
    };
    let db = open(cfg.clone());
    let e = assert_kind(
        db.query(1, "SELECT 1", vec![], &limits()).await,
        ErrorKind::Unavailable,
        true,
    );
    assert!(!e.message.contains("hunter2"));
    let tcp = PgConfig {
        host: "127.0.0.1".into(),
        port: 1,
        ..cfg.clone()
    };
    assert_kind(
        open(tcp).query(1, "SELECT 1", vec![], &limits()).await,
        ErrorKind::Unavailable,
        true,
    );

    // TLS is a known gap: refused at connect with a clear message.
    let mut tls = config("tls").await;
    tls.options = vec![("sslmode".into(), "verify-full".into())];
    let e = assert_kind(
        open(tls).query(1, "SELECT 1", vec![], &limits()).await,
        ErrorKind::Unavailable,
        false,
    );
    assert!(e.message.contains("TLS"), "{e}");

    // A dsn, application_name and connect_timeout; unknown options ignored.
    config("dsn").await;
    let c = cluster::cluster();
    let mut via_dsn = PgConfig {
        dsn: Some(format!(
            "postgres://warren@localhost/dsn?host={}&port={}",
            c.host(),
            c.port
        )),
        ..PgConfig::default()
    };
    via_dsn.options = vec![
        ("application_name".into(), "warren-test".into()),
        ("connect_timeout".into(), "5".into()),
        ("sslmode".into(), "prefer".into()),
        ("frobnicate".into(), "1".into()),
    ];
    let db = open(via_dsn);
    let v = db
        .query(
            1,
            "SELECT current_setting('application_name') AS a, current_database() AS d",
            vec![],
            &limits(),
        )
        .await
        .expect("dsn");
    assert_eq!(one(&v).get("a"), Some(&Value::str("warren-test")));
    assert_eq!(one(&v).get("d"), Some(&Value::str("dsn")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_lifetime_and_max_idle() {
    let mut cfg = config("life").await;
    cfg.max_lifetime = Duration::from_millis(50);
    let db = open(cfg);
    let pid = |v: Value| int(one(&v), "p");
    let first = pid(db
        .query(1, "SELECT pg_backend_pid() AS p", vec![], &limits())
        .await
        .expect("a"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = pid(db
        .query(1, "SELECT pg_backend_pid() AS p", vec![], &limits())
        .await
        .expect("b"));
    assert_ne!(first, second, "an old connection is replaced");
    assert!(matches!(db.stats().get("max_lifetime_closed"), Some(Value::Int(n)) if *n >= 1));

    let mut cfg = config("idle").await;
    cfg.max_idle = 1;
    let db = open(cfg);
    let t1 = db.begin(1, TxOptions::default()).await.expect("t1");
    let t2 = db.begin(2, TxOptions::default()).await.expect("t2");
    t1.rollback().await.expect("r1");
    t2.rollback().await.expect("r2");
    let trimmed = eventually(Duration::from_secs(3), || async {
        db.stats().get("open_connections") == Some(&Value::Int(1))
    })
    .await;
    assert!(trimmed, "{:?}", db.stats());
    assert!(matches!(db.stats().get("max_idle_closed"), Some(Value::Int(n)) if *n >= 1));
}

/// The hosts of an entry's callers take turns for its connections: a
/// backlog of one host's statements delays another host's call by one of
/// them, not by all (the pool alone lent connections first come, first
/// served).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_hosts_take_turns_for_connections() {
    const VICTIM: i32 = 99;
    let mut cfg = config("turns").await;
    cfg.max_open = 1;
    let db = open(cfg);
    let (flooder, victim) = (Pid::new(1, 1).as_u64(), Pid::new(2, 1).as_u64());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let call = |owner: u64, sql: &str, tag: i32| {
        let tx = tx.clone();
        let done = move |out: Result<Value, warren_core::ProcError>| {
            out.expect("ran");
            let _ = tx.send(tag);
        };
        db.run_then(owner, None, sql.into(), vec![], Some(limits()), done)
            .expect("started");
    };
    for i in 0..12 {
        call(flooder, "SELECT pg_sleep(0.05)", i);
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await; // the flood queued
    call(victim, "SELECT 1 AS one", VICTIM);
    let mut order = Vec::new();
    while order.len() < 13 {
        let tag = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await;
        order.push(tag.expect("every call reports").expect("open"));
    }
    let at = order
        .iter()
        .position(|&t| t == VICTIM)
        .expect("the victim's call");
    // The flooder's first (holding the connection) and at most one more go first.
    assert!(at <= 2, "the other host's call ran at {at}: {order:?}");
}

/// Once two hosts have used an entry, one of them cannot hold every
/// connection: the last `max_open / 4` are kept for hosts holding none,
/// so the other still gets one while the first keeps transactions open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_hold_every_connection_of_a_shared_entry() {
    let mut cfg = config("reserve").await;
    cfg.max_open = 4;
    // Long enough to open three connections on a loaded machine.
    cfg.acquire_timeout = Duration::from_secs(2);
    let db = open(cfg);
    let (hog, other) = (Pid::new(1, 1).as_u64(), Pid::new(2, 1).as_u64());
    db.query(other, "SELECT 1", vec![], &limits())
        .await
        .expect("the other host uses the entry");
    let begins = (0..4).map(|_| db.begin(hog, TxOptions::default()));
    let (held, refused): (Vec<_>, Vec<_>) = futures_util::future::join_all(begins)
        .await
        .into_iter()
        .partition(Result::is_ok);
    assert_eq!(held.len(), 3, "the hog holds all but the reserve");
    let e = refused.into_iter().next().expect("one refused").err();
    let e = e.expect("an error");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(e.message.contains("acquire_timeout"), "{e}");
    let v = db
        .query(other, "SELECT 7 AS n", vec![], &limits())
        .await
        .expect("the reserved connection");
    assert_eq!(int(one(&v), "n"), 7);
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_borrower_does_to_its_session_ends_with_the_borrow() {
    // One connection, borrowed in turn by two callers (owners 1 and 2,
    // as two tenants' processes would be). The first plants a
    // temporary table shadowing `users`, a setting, a prepared statement
    // and an advisory lock, then a transaction begun by hand with a row
    // lock; the second must see none of it, and its own write must stay
    // committed (red team I: it went into the first one's transaction and
    // was rolled back with it).
    let mut cfg = config("session").await;
    cfg.max_open = 1;
    let db = open(cfg);
    let limits = limits();
    db.execute(
        1,
        "CREATE TABLE users (id int PRIMARY KEY, name text)",
        vec![],
    )
    .await
    .expect("schema");
    db.execute(1, "INSERT INTO users VALUES (1, 'alice')", vec![])
        .await
        .expect("row");
    for plant in [
        "CREATE TEMP TABLE users (id int, name text); INSERT INTO pg_temp.users VALUES (1, 'shadow')",
        "SET statement_timeout = 1",
        "PREPARE planted AS SELECT 1",
        "SELECT pg_advisory_lock(42)",
        "BEGIN; UPDATE users SET name = 'locked' WHERE id = 1",
    ] {
        db.execute(1, plant, vec![]).await.expect(plant);
    }
    // Returning the connection is asynchronous: the next borrow waits
    // for it (one connection), so these see the reset session.
    let v = db
        .query(
            2,
            "SELECT (SELECT name FROM users WHERE id = 1) AS name,
                    current_setting('statement_timeout') AS timeout,
                    (SELECT count(*) FROM pg_prepared_statements) AS prepared,
                    pg_try_advisory_lock(42) AS lock",
            vec![],
            &limits,
        )
        .await
        .expect("second borrower");
    let row = one(&v);
    assert_eq!(row.get("name"), Some(&Value::str("alice")), "{v:?}");
    assert_eq!(row.get("timeout"), Some(&Value::str("0")), "{v:?}");
    assert_eq!(int(row, "prepared"), 0, "{v:?}");
    assert_eq!(row.get("lock"), Some(&Value::Bool(true)), "{v:?}");
    db.execute(2, "SELECT pg_advisory_unlock_all()", vec![])
        .await
        .expect("unlock");
    db.execute(2, "INSERT INTO users VALUES (2, 'bob')", vec![])
        .await
        .expect("second writer");
    db.execute(1, "ROLLBACK", vec![])
        .await
        .expect("a rollback outside a transaction is a warning");
    let v = db
        .query(2, "SELECT count(*) AS n FROM users", vec![], &limits)
        .await
        .expect("count");
    assert_eq!(int(one(&v), "n"), 2, "the second writer's row was kept");
    db.shutdown().await;
}
