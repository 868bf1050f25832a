//! SQLite, for real: a file in a temp dir and `:memory:`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{assert_kind, code, eventually, limits, rows, temp_path};
use tokio::runtime::Handle;
use warren_core::{ErrorKind, Pid, Value};
use warren_sql::{
    Database, DbConfig, DbKind, EngineMeter, Isolation, Param, ResultLimits, SqliteFile, TxOptions,
};

/// Counts to a billion: runs for many seconds unless interrupted.
const LONG: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                    WHERE x < 1000000000) SELECT count(*) AS n FROM c";

struct TempDb {
    db: Arc<Database>,
    dir: std::path::PathBuf,
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn file_db(timeout: Option<Duration>) -> TempDb {
    let dir = temp_path("sqlite");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let cfg = DbConfig::Sqlite {
        file: SqliteFile::Path(dir.join("app.db")),
        max_lifetime: Duration::from_secs(3600),
        query_timeout: timeout,
    };
    let db = Database::open("app.db:main", cfg, Handle::current()).expect("open");
    TempDb { db, dir }
}

fn mem_db() -> Arc<Database> {
    let cfg = DbConfig::Sqlite {
        file: SqliteFile::Memory,
        max_lifetime: Duration::from_secs(3600),
        query_timeout: None,
    };
    Database::open("mem", cfg, Handle::current()).expect("open")
}

async fn setup(db: &Database) {
    db.execute(
        1,
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);
         CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent(id));",
        vec![],
    )
    .await
    .expect("schema");
}

fn count_of(v: &Value) -> i64 {
    match rows(v)[0].get("n") {
        Some(Value::Int(n)) => *n,
        other => panic!("no count: {other:?}"),
    }
}

async fn count(db: &Database, owner: u64) -> i64 {
    let v = db
        .query(owner, "SELECT count(*) AS n FROM parent", vec![], &limits())
        .await
        .expect("count");
    count_of(&v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_database_values_and_execute() {
    let t = file_db(None);
    let db = &t.db;
    assert_eq!(db.kind(), DbKind::Sqlite);
    assert_eq!(db.kind().name(), "sqlite");
    assert_eq!(db.id(), "app.db:main");
    setup(db).await;
    assert!(t.dir.join("app.db").is_file(), "file created");
    let mode = db
        .query(1, "PRAGMA journal_mode", vec![], &limits())
        .await
        .expect("mode");
    assert_eq!(rows(&mode)[0].get("journal_mode"), Some(&Value::str("wal")));

    let r = db
        .execute(
            1,
            "INSERT INTO parent (name) VALUES (?), (?)",
            vec![Param::text("a"), Param::text("b")],
        )
        .await
        .expect("insert");
    assert_eq!((r.rows_affected, r.last_insert_id), (2, 2));
    assert_eq!(
        r.to_value(),
        Value::Map(vec![
            (Value::str("rows_affected"), Value::Int(2)),
            (Value::str("last_insert_id"), Value::Int(2)),
        ])
    );
    let v = db
        .query(
            1,
            "SELECT 1 AS i, 2.5 AS f, 'x' AS t, x'00ff' AS b, NULL AS n, ? AS p, ? AS q, \
             1 AS d, 2 AS d",
            vec![Param::Bool(true), Param::Blob(vec![1, 2])],
            &limits(),
        )
        .await
        .expect("select");
    let row = &rows(&v)[0];
    assert_eq!(row.get("i"), Some(&Value::Int(1)));
    assert_eq!(row.get("f"), Some(&Value::Float(2.5)));
    assert_eq!(row.get("t"), Some(&Value::str("x")));
    assert_eq!(row.get("b"), Some(&Value::Str(vec![0, 255])));
    assert_eq!(row.get("n"), None, "NULL is absent");
    assert_eq!(row.get("p"), Some(&Value::Int(1)), "bool is 1");
    assert_eq!(row.get("q"), Some(&Value::Str(vec![1, 2])));
    assert_eq!(row.get("d"), Some(&Value::Int(2)), "last duplicate wins");
    let Value::Map(cells) = row else {
        panic!("map")
    };
    assert_eq!(
        cells
            .iter()
            .filter(|(k, _)| k.as_str() == Some("d"))
            .count(),
        1
    );

    let v = db
        .query(
            1,
            "SELECT name FROM parent ORDER BY id DESC",
            vec![],
            &limits(),
        )
        .await
        .expect("order");
    let names: Vec<_> = rows(&v).iter().map(|r| r.get("name").cloned()).collect();
    assert_eq!(names, vec![Some(Value::str("b")), Some(Value::str("a"))]);
    let none = db
        .query(1, "SELECT * FROM parent WHERE id < 0", vec![], &limits())
        .await
        .expect("none");
    assert_eq!(none, Value::Array(vec![]));

    // A batch reports its last statement.
    let r = db
        .execute(
            1,
            "INSERT INTO parent (name) VALUES ('c'); UPDATE parent SET name = name || '!' \
             WHERE id <= 2;",
            vec![],
        )
        .await
        .expect("batch");
    assert_eq!(r.rows_affected, 2);
    let r = db
        .execute(
            1,
            "DELETE FROM parent WHERE id = 3; CREATE TABLE z (a)",
            vec![],
        )
        .await
        .expect("batch ddl");
    assert_eq!(r.rows_affected, 0, "last statement changed no rows");
    db.prepare_check(1, "SELECT name FROM parent")
        .await
        .expect("valid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_kinds() {
    let db = mem_db();
    setup(&db).await;
    db.execute(1, "INSERT INTO parent (id, name) VALUES (1, 'a')", vec![])
        .await
        .expect("insert");
    let e = assert_kind(
        db.query(1, "SELEC 1", vec![], &limits()).await,
        ErrorKind::Invalid,
        false,
    );
    assert_eq!(code(&e), Value::Int(1));
    assert_kind(
        db.query(1, "SELECT * FROM nope", vec![], &limits()).await,
        ErrorKind::Invalid,
        false,
    );
    assert_kind(
        db.query(1, "SELECT nope FROM parent", vec![], &limits())
            .await,
        ErrorKind::Invalid,
        false,
    );
    assert_kind(
        db.prepare_check(1, "SELECT nope FROM parent").await,
        ErrorKind::Invalid,
        false,
    );
    assert_kind(
        db.query(1, "SELECT ?", vec![], &limits()).await,
        ErrorKind::Invalid,
        false,
    );
    assert_kind(
        db.execute(1, "SELECT ?; SELECT ?", vec![Param::Int(1)])
            .await,
        ErrorKind::Invalid,
        false,
    );
    let e = assert_kind(
        db.execute(1, "INSERT INTO parent (name) VALUES ('a')", vec![])
            .await,
        ErrorKind::AlreadyExists,
        false,
    );
    assert_eq!(code(&e), Value::Int(2067), "SQLITE_CONSTRAINT_UNIQUE");
    let e = assert_kind(
        db.execute(1, "INSERT INTO parent (id, name) VALUES (1, 'z')", vec![])
            .await,
        ErrorKind::AlreadyExists,
        false,
    );
    assert_eq!(code(&e), Value::Int(1555), "SQLITE_CONSTRAINT_PRIMARYKEY");
    assert_kind(
        db.execute(1, "INSERT INTO parent (id) VALUES (7)", vec![])
            .await,
        ErrorKind::Conflict,
        false,
    );
    let e = assert_kind(
        db.execute(1, "INSERT INTO child (parent) VALUES (99)", vec![])
            .await,
        ErrorKind::Conflict,
        false,
    );
    assert_eq!(code(&e), Value::Int(787), "SQLITE_CONSTRAINT_FOREIGNKEY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_rollback_and_savepoints() {
    let db = mem_db();
    setup(&db).await;
    let tx = db.begin(1, TxOptions::default()).await.expect("begin");
    assert_eq!(tx.db_kind(), DbKind::Sqlite);
    tx.execute(
        "INSERT INTO parent (name) VALUES (?)",
        vec![Param::text("a")],
    )
    .await
    .expect("insert");
    tx.savepoint("sp_1").await.expect("savepoint");
    tx.execute("INSERT INTO parent (name) VALUES ('b')", vec![])
        .await
        .expect("b");
    tx.rollback_to("sp_1").await.expect("rollback_to");
    tx.release("sp_1").await.expect("release");
    let e = assert_kind(tx.savepoint("bad name").await, ErrorKind::Invalid, false);
    assert!(e.message.contains("'bad name'"), "{e}");
    assert_kind(tx.rollback_to("missing").await, ErrorKind::Invalid, false);
    let v = tx
        .query("SELECT count(*) AS n FROM parent", vec![], &limits())
        .await
        .expect("q");
    assert_eq!(count_of(&v), 1);
    tx.commit().await.expect("commit");
    assert!(!tx.is_active());
    let e = assert_kind(
        tx.query("SELECT 1", vec![], &limits()).await,
        ErrorKind::Invalid,
        false,
    );
    assert_eq!(e.message, "transaction is not active");
    assert_kind(tx.commit().await, ErrorKind::Invalid, false);
    assert_kind(tx.savepoint("x").await, ErrorKind::Invalid, false);
    assert_eq!(count(&db, 2).await, 1);

    let tx = db.begin(1, TxOptions::default()).await.expect("begin");
    tx.execute("INSERT INTO parent (name) VALUES ('c')", vec![])
        .await
        .expect("c");
    tx.rollback().await.expect("rollback");
    assert_kind(tx.rollback().await, ErrorKind::Invalid, false);
    assert_eq!(count(&db, 2).await, 1);

    let serial = TxOptions {
        isolation: Isolation::Serializable,
        read_only: false,
    };
    db.begin(1, serial)
        .await
        .expect("serializable")
        .rollback()
        .await
        .expect("rb");
    let rc = TxOptions {
        isolation: Isolation::from_name("read_committed").expect("level"),
        read_only: false,
    };
    assert_kind(db.begin(1, rc).await, ErrorKind::Invalid, false);
    assert_kind(Isolation::from_name("chaos"), ErrorKind::Invalid, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_transactions_refuse_writes_and_reset() {
    let db = mem_db();
    setup(&db).await;
    let ro = TxOptions {
        isolation: Isolation::Default,
        read_only: true,
    };
    let tx = db.begin(1, ro).await.expect("begin");
    assert_eq!(
        count_of(
            &tx.query("SELECT count(*) AS n FROM parent", vec![], &limits())
                .await
                .expect("read")
        ),
        0
    );
    assert_kind(
        tx.execute("INSERT INTO parent (name) VALUES ('a')", vec![])
            .await,
        ErrorKind::Invalid,
        false,
    );
    tx.commit().await.expect("commit");
    db.execute(1, "INSERT INTO parent (name) VALUES ('a')", vec![])
        .await
        .expect("writable again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_transaction_conflicts_and_others_wait() {
    let t = file_db(None);
    let db = t.db.clone();
    setup(&db).await;
    let tx = db.begin(1, TxOptions::default()).await.expect("begin");
    tx.execute("INSERT INTO parent (name) VALUES ('one')", vec![])
        .await
        .expect("insert");
    let e = assert_kind(
        db.query(1, "SELECT 1", vec![], &limits()).await,
        ErrorKind::Conflict,
        false,
    );
    assert!(e.message.contains("its own transaction"), "{e}");
    assert_kind(
        db.begin(1, TxOptions::default()).await,
        ErrorKind::Conflict,
        false,
    );

    let other = db.clone();
    let mut waiting = tokio::spawn(async move {
        other
            .execute(2, "INSERT INTO parent (name) VALUES ('two')", vec![])
            .await
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut waiting)
            .await
            .is_err(),
        "owner 2 waits for owner 1's transaction"
    );
    tx.commit().await.expect("commit");
    let r = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("owner 2 proceeds")
        .expect("join")
        .expect("insert");
    assert_eq!(r.rows_affected, 1);
    assert_eq!(count(&db, 1).await, 2, "owner 1 may use the db again");
    let stats = db.stats();
    assert_eq!(stats.get("max_open_connections"), Some(&Value::Int(1)));
    assert_eq!(stats.get("open_connections"), Some(&Value::Int(1)));
    assert!(
        matches!(stats.get("wait_count"), Some(Value::Int(n)) if *n >= 1),
        "{stats:?}"
    );
    assert!(stats.get("wait_duration").and_then(Value::as_str).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_or_closed_transactions_roll_back_and_free_the_connection() {
    let db = mem_db();
    setup(&db).await;
    let tx = db.begin(1, TxOptions::default()).await.expect("begin");
    tx.execute("INSERT INTO parent (name) VALUES ('gone')", vec![])
        .await
        .expect("insert");
    drop(tx);
    let free = tokio::time::timeout(Duration::from_secs(5), count(&db, 2)).await;
    assert_eq!(free.expect("connection free after drop"), 0, "rolled back");
    assert_eq!(
        count(&db, 1).await,
        0,
        "owner 1 is not blocked by its dropped tx"
    );

    let tx = db.begin(1, TxOptions::default()).await.expect("begin");
    tx.execute("INSERT INTO parent (name) VALUES ('gone')", vec![])
        .await
        .expect("insert");
    tx.close();
    tx.close();
    assert_kind(
        tx.execute("SELECT 1", vec![]).await,
        ErrorKind::Invalid,
        false,
    );
    assert_eq!(count(&db, 1).await, 0);

    // A stray BEGIN outside the tx API is not left open on the connection.
    db.execute(
        3,
        "BEGIN; INSERT INTO parent (name) VALUES ('stray')",
        vec![],
    )
    .await
    .expect("stray");
    assert_eq!(count(&db, 4).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_query_interrupts_and_connection_is_usable() {
    let t = file_db(None);
    let db = t.db.clone();
    let d = db.clone();
    let long = tokio::spawn(async move { d.query(1, LONG, vec![], &limits()).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    long.abort();
    let quick = tokio::time::timeout(
        Duration::from_secs(3),
        db.query(2, "SELECT 42 AS n", vec![], &limits()),
    )
    .await
    .expect("interrupted promptly")
    .expect("usable");
    assert_eq!(count_of(&quick), 42);

    // The same inside a transaction: it ends, and the lease comes back.
    let tx = db.begin(3, TxOptions::default()).await.expect("begin");
    let tx2 = tx.clone();
    let long = tokio::spawn(async move { tx2.query(LONG, vec![], &limits()).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    long.abort();
    let quick = tokio::time::timeout(
        Duration::from_secs(3),
        db.query(4, "SELECT 7 AS n", vec![], &limits()),
    )
    .await
    .expect("lease released")
    .expect("usable");
    assert_eq!(count_of(&quick), 7);
    assert!(!tx.is_active());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_timeout_and_result_limit() {
    let t = file_db(Some(Duration::from_millis(200)));
    let db = &t.db;
    let start = std::time::Instant::now();
    let e = assert_kind(
        db.query(1, LONG, vec![], &limits()).await,
        ErrorKind::Timeout,
        true,
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(e.message.contains("query_timeout"), "{e}");
    let v = db
        .query(1, "SELECT 1 AS n", vec![], &limits())
        .await
        .expect("usable");
    assert_eq!(count_of(&v), 1);

    let tx = db.begin(1, TxOptions::default()).await.expect("begin");
    assert_kind(
        tx.query(LONG, vec![], &limits()).await,
        ErrorKind::Timeout,
        true,
    );
    tx.rollback().await.ok();

    let small = ResultLimits::bytes(1000);
    let e = assert_kind(
        db.query(
            1,
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) \
             SELECT x FROM c",
            vec![],
            &small,
        )
        .await,
        ErrorKind::Invalid,
        false,
    );
    assert_eq!(
        e.details.expect("details").get("limit"),
        Some(&Value::Int(1000))
    );
    let ok = db
        .query(1, "SELECT 1 AS x", vec![], &small)
        .await
        .expect("small fits");
    assert_eq!(rows(&ok).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_databases_are_private_per_entry() {
    let a = mem_db();
    let b = mem_db();
    setup(&a).await;
    assert_kind(
        b.query(1, "SELECT * FROM parent", vec![], &limits()).await,
        ErrorKind::Invalid,
        false,
    );
    assert!(eventually(Duration::from_secs(1), || async { count(&a, 1).await == 0 }).await);
}

/// A counting query of about a millisecond.
const SHORT_WORK: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                          WHERE x < 20000) SELECT count(*) AS n FROM c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_then_reports_from_the_runner_and_a_stopped_call_never_runs() {
    let t = file_db(None);
    let db = t.db.clone();
    db.execute(1, "CREATE TABLE t (x INTEGER)", vec![])
        .await
        .expect("table");
    let (long_tx, long_rx) = std::sync::mpsc::channel();
    let long = db
        .run_then(1, None, LONG.into(), vec![], Some(limits()), move |out| {
            let _ = long_tx.send(out);
        })
        .expect("queued");
    // Queued behind the long query, then stopped before it can start.
    let (insert_tx, insert_rx) = std::sync::mpsc::channel();
    let insert = db
        .run_then(
            2,
            None,
            "INSERT INTO t VALUES (1)".into(),
            vec![],
            None,
            move |out| {
                let _ = insert_tx.send(out);
            },
        )
        .expect("queued");
    insert.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    long.stop();
    // Interrupted (its error reported) or, on a machine too busy to have
    // started it within 100 ms, dropped unrun: never a result, never a hang.
    let interrupted = long_rx.recv_timeout(Duration::from_secs(5));
    assert!(
        matches!(
            interrupted,
            Ok(Err(_)) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        ),
        "{interrupted:?}"
    );
    let unrun = insert_rx.recv_timeout(Duration::from_secs(5));
    assert!(
        matches!(unrun, Err(std::sync::mpsc::RecvTimeoutError::Disconnected)),
        "the stopped call was dropped uncalled: {unrun:?}"
    );
    let rows = db
        .query(3, "SELECT count(*) AS n FROM t", vec![], &limits())
        .await
        .expect("counted");
    assert_eq!(count_of(&rows), 0, "the stopped insert never ran");

    // A plain execute's result as a map, from the runner's thread.
    let (tx, rx) = std::sync::mpsc::channel();
    let caller = std::thread::current().id();
    db.run_then(
        4,
        None,
        "INSERT INTO t VALUES (2)".into(),
        vec![],
        None,
        move |out| {
            let _ = tx.send((out, std::thread::current().id()));
        },
    )
    .expect("queued");
    let (out, ran_on) = rx.recv_timeout(Duration::from_secs(5)).expect("reported");
    let out = out.expect("inserted");
    assert_eq!(out.get("rows_affected"), Some(&Value::Int(1)), "{out:?}");
    assert_ne!(ran_on, caller);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_waits_behind_a_bounded_share_of_queued_calls() {
    let t = file_db(None);
    let db = t.db.clone();
    // A first transaction holds the connection while the calls queue and
    // their runner waits for it; a second one asks after the runner.
    let first = db.begin(1, TxOptions::default()).await.expect("begin");
    let finished = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    const QUEUED: usize = 400;
    for owner in 0..QUEUED {
        let finished = finished.clone();
        db.run_then(
            owner as u64 + 10,
            None,
            SHORT_WORK.into(),
            vec![],
            Some(limits()),
            move |out| {
                out.expect("counted");
                finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            },
        )
        .expect("queued");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let d = db.clone();
    let second =
        tokio::spawn(async move { d.begin(2, TxOptions::default()).await.expect("begin") });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(finished.load(std::sync::atomic::Ordering::SeqCst), 0);
    first.rollback().await.expect("rollback");
    let tx = second.await.expect("joined");
    let before = finished.load(std::sync::atomic::Ordering::SeqCst);
    // The runner gives the connection up after 32 calls, and the second
    // transaction, queued for it before the runner queued again, is next.
    assert!(
        before <= 32,
        "the transaction waited behind {before} of {QUEUED} queued calls"
    );
    tx.rollback().await.expect("rollback");
    assert!(
        eventually(Duration::from_secs(20), || async {
            finished.load(std::sync::atomic::Ordering::SeqCst) == QUEUED
        })
        .await,
        "every queued call ran"
    );
}

/// The hosts of an entry's callers take turns: a backlog of one host's
/// statements delays another host's call by one of them, not by all
/// (before, the queue was first come, first served).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_hosts_take_turns_on_an_entry() {
    const SHORT: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                         WHERE x < 200000) SELECT count(*) AS n FROM c";
    const VICTIM: i32 = 99;
    let db = mem_db();
    let (flooder, victim) = (Pid::new(1, 1).as_u64(), Pid::new(2, 1).as_u64());
    let (tx, rx) = std::sync::mpsc::channel();
    let call = |owner: u64, sql: &str, tag: i32| {
        let tx = tx.clone();
        let done = move |out: Result<Value, warren_core::ProcError>| {
            out.expect("ran");
            let _ = tx.send(tag);
        };
        db.run_then(owner, None, sql.into(), vec![], Some(limits()), done)
            .expect("queued");
    };
    for i in 0..20 {
        call(flooder, SHORT, i);
    }
    call(victim, "SELECT 1 AS one", VICTIM);
    let order: Vec<i32> = (0..21)
        .map(|_| {
            rx.recv_timeout(Duration::from_secs(30))
                .expect("every call reports")
        })
        .collect();
    let at = order
        .iter()
        .position(|&t| t == VICTIM)
        .expect("the victim's call");
    // The flooder's first (already running) and at most one more go first.
    assert!(at <= 2, "the other host's call ran at {at}: {order:?}");
}

/// A plain call queued while a transaction holds the connection waits
/// for it without taking a thread of the SQL lane. With as many such
/// entries as one host may run statements at once
/// (`SQL_LANE_PER_HOST`), the transactions' own statements still run:
/// runners blocked on the leases would hold every thread the host may
/// use, and all would wait forever.
#[test]
fn queued_calls_wait_for_their_leases_without_holding_lane_threads() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut held = Vec::new();
        for _ in 0..warren_core::SQL_LANE_PER_HOST {
            let db = mem_db();
            db.execute(1, "CREATE TABLE t (x INTEGER)", vec![])
                .await
                .expect("table");
            let tx = db.begin(1, TxOptions::default()).await.expect("begin");
            // Owners 1 and 2 are processes of the same host (0).
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            db.run_then(
                2,
                None,
                "INSERT INTO t VALUES (2)".into(),
                vec![],
                None,
                move |out| {
                    let _ = done_tx.send(out);
                },
            )
            .expect("queued");
            held.push((db, tx, done_rx));
        }
        for (_, tx, _) in &held {
            let inside = tokio::time::timeout(
                Duration::from_secs(5),
                tx.execute("INSERT INTO t VALUES (1)", vec![]),
            )
            .await
            .expect("the transaction's statement ran")
            .expect("inserted");
            assert_eq!(inside.to_value().get("rows_affected"), Some(&Value::Int(1)));
            tx.commit().await.expect("commit");
        }
        for (_, _, done_rx) in held {
            let queued = tokio::time::timeout(Duration::from_secs(5), done_rx)
                .await
                .expect("the queued call ran after the commit")
                .expect("it reported");
            queued.expect("inserted");
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metered_statement_ends_at_its_allowance_and_is_charged() {
    let t = file_db(None);
    let db = t.db.clone();
    let meter = Arc::new(EngineMeter::new());
    meter.allow(Duration::from_millis(60));
    // A plain call: interrupted once its CPU time reaches the allowance.
    let (tx, rx) = std::sync::mpsc::channel();
    db.run_then(
        1,
        Some(meter.clone()),
        LONG.into(),
        vec![],
        Some(limits()),
        move |out| drop(tx.send(out)),
    )
    .expect("queued");
    let out = rx.recv_timeout(Duration::from_secs(10)).expect("ended");
    let err = out.expect_err("interrupted");
    assert_eq!(err.kind, ErrorKind::RateLimited, "{err}");
    assert!(err.message.contains("cpu budget exceeded"), "{err}");
    let spent = meter.spent();
    assert!(spent >= Duration::from_millis(60), "charged {spent:?}");
    // Nothing left: the next statement stops at once and is charged too.
    let (tx, rx) = std::sync::mpsc::channel();
    db.run_then(
        1,
        Some(meter.clone()),
        LONG.into(),
        vec![],
        None,
        move |out| drop(tx.send(out)),
    )
    .expect("queued");
    let err = rx.recv_timeout(Duration::from_secs(10)).expect("ended");
    assert_eq!(err.expect_err("interrupted").kind, ErrorKind::RateLimited);
    assert!(
        meter.spent() < spent + Duration::from_millis(200),
        "{:?}",
        meter.spent()
    );
    // A transaction's statements are charged to the meter it began with.
    meter.allow(Duration::from_millis(30));
    let tx = db
        .begin_metered(1, TxOptions::default(), Some(meter.clone()))
        .await
        .expect("begin");
    let err = tx
        .query(LONG, vec![], &limits())
        .await
        .expect_err("interrupted");
    assert_eq!(err.kind, ErrorKind::RateLimited, "{err}");
    drop(tx);
    // The connection serves others afterwards.
    assert_eq!(count_rows(&db, "SELECT 1 AS n").await, 1);
}

/// The rows of `sql` on `db`, as an unmetered caller.
async fn count_rows(db: &Database, sql: &str) -> usize {
    match db.query(9, sql, vec![], &limits()).await.expect("query") {
        Value::Array(rows) => rows.len(),
        other => panic!("not rows: {other:?}"),
    }
}

/// Spellings of a trigger in the temp schema on a table of `main`: SQLite
/// reports each to the authorizer as a trigger of `main` (its table's
/// schema), and the trigger outlived the process that made it, firing on
/// every later process's inserts.
const TEMP_TRIGGERS: &[&str] = &[
    "CREATE TRIGGER temp.tr AFTER INSERT ON main.t BEGIN {body} END",
    "CREATE TRIGGER \"temp\".\"tr\" AFTER INSERT ON main.t BEGIN {body} END",
    "CREATE TRIGGER [temp].tr AFTER INSERT ON main.t BEGIN {body} END",
    "CREATE TRIGGER `temp`.`tr` AFTER INSERT ON main.t BEGIN {body} END",
    "CREATE TRIGGER TEMP . tr AFTER INSERT ON main.t BEGIN {body} END",
    "CREATE TRIGGER Temp.tr AFTER INSERT ON t BEGIN {body} END",
    "CREATE TRIGGER IF NOT EXISTS temp.tr AFTER INSERT ON main.t BEGIN {body} END",
    "CREATE /* a */ TRIGGER temp /* b */ . -- c\n tr AFTER INSERT ON main.t BEGIN {body} END",
    "CREATE TRIGGER temp.tr INSTEAD OF INSERT ON main.v BEGIN {body} END",
    "CREATE TRIGGER temp.tr UPDATE OF a ON main.t WHEN new.a > 0 BEGIN {body} END",
];

/// What a planted trigger would do to the next process's row.
const REWRITE: &str = "UPDATE main.t SET b = 'rewritten' WHERE rowid = new.rowid;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_in_the_temp_schema_are_refused_however_spelt() {
    let t = file_db(None);
    let db = &t.db;
    db.execute(
        1,
        "CREATE TABLE t (a, b); CREATE VIEW v AS SELECT a, b FROM t",
        vec![],
    )
    .await
    .expect("schema");
    for spelling in TEMP_TRIGGERS {
        let sql = spelling.replace("{body}", REWRITE);
        let e = assert_kind(
            db.execute(1, &sql, vec![]).await,
            ErrorKind::PermissionDenied,
            false,
        );
        assert!(
            e.message.contains("CREATE TEMP of 'tr'") && e.message.contains("temporary objects"),
            "{sql}: {e}"
        );
        // A query runs its statement too.
        let e = assert_kind(
            db.query(1, &sql, vec![], &limits()).await,
            ErrorKind::PermissionDenied,
            false,
        );
        assert!(e.message.contains("CREATE TEMP of 'tr'"), "{sql}: {e}");
    }
    let planted = db
        .query(
            2,
            "SELECT count(*) AS n FROM temp.sqlite_master",
            vec![],
            &limits(),
        )
        .await
        .expect("temp schema");
    assert_eq!(count_of(&planted), 0, "the temp schema gained an object");
    // Another process's insert is its own.
    db.execute(2, "INSERT INTO t VALUES (1, 'mine')", vec![])
        .await
        .expect("insert");
    let v = db
        .query(2, "SELECT b FROM t", vec![], &limits())
        .await
        .expect("read back");
    assert_eq!(rows(&v)[0].get("b"), Some(&Value::str("mine")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_tables_in_the_temp_schema_are_refused() {
    let t = file_db(None);
    let db = &t.db;
    db.execute(1, "CREATE TABLE t (a, b)", vec![])
        .await
        .expect("table");
    // Modules without shadow tables made a temp table named like `t`,
    // which every process's unqualified `t` then read.
    for module in ["dbstat", "fts5vocab(main, t, row)", "fts5(a, b)"] {
        let sql = format!("CREATE VIRTUAL TABLE temp.t USING {module}");
        let e = assert_kind(
            db.execute(1, &sql, vec![]).await,
            ErrorKind::PermissionDenied,
            false,
        );
        assert!(e.message.contains("CREATE TEMP of 't'"), "{sql}: {e}");
    }
    let planted = db
        .query(
            2,
            "SELECT count(*) AS n FROM temp.sqlite_master",
            vec![],
            &limits(),
        )
        .await
        .expect("temp schema");
    assert_eq!(count_of(&planted), 0, "the temp schema gained an object");
    // Virtual tables of the entry's own database are its business.
    db.execute(1, "CREATE VIRTUAL TABLE docs USING fts5(body)", vec![])
        .await
        .expect("main virtual table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_in_the_main_schema_still_work() {
    let t = file_db(None);
    let db = &t.db;
    db.execute(1, "CREATE TABLE t (a, b)", vec![])
        .await
        .expect("table");
    for sql in [
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET b = 'by tr' WHERE rowid = new.rowid; END",
        "CREATE TRIGGER main.tr2 AFTER DELETE ON main.t BEGIN SELECT 1; END",
    ] {
        db.execute(1, sql, vec![]).await.expect(sql);
    }
    // Created and stepped in one batch, as the guard forgets a trigger's
    // name between statements: the next create in temp still names its own.
    let e = assert_kind(
        db.execute(
            1,
            "CREATE TRIGGER tr3 AFTER UPDATE ON t BEGIN SELECT 1; END; \
             CREATE TABLE temp.x (a)",
            vec![],
        )
        .await,
        ErrorKind::PermissionDenied,
        false,
    );
    assert!(e.message.contains("CREATE TEMP of 'x'"), "{e}");
    db.execute(1, "INSERT INTO t VALUES (1, 'given')", vec![])
        .await
        .expect("insert");
    let v = db
        .query(1, "SELECT b FROM t", vec![], &limits())
        .await
        .expect("read back");
    assert_eq!(rows(&v)[0].get("b"), Some(&Value::str("by tr")));
    let v = db
        .query(
            1,
            "SELECT name FROM main.sqlite_master WHERE type = 'trigger' ORDER BY name",
            vec![],
            &limits(),
        )
        .await
        .expect("schema");
    let names: Vec<_> = rows(&v).iter().filter_map(|r| r.get("name")).collect();
    assert_eq!(
        names,
        [&Value::str("tr"), &Value::str("tr2"), &Value::str("tr3")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorts_and_distinct_sets_stay_in_the_bounded_heap_not_in_temp_files() {
    // A `count(DISTINCT randomblob(1000))` over a long series spilled its
    // set to an unlinked temporary file nothing bounded: 7.8 GB in a
    // minute for a 16 MiB process (red team I). The entry's connection
    // keeps temporary storage in memory, under the library's heap limit,
    // and a user cannot set it back.
    let t = file_db(None);
    let store = |v: &Value| rows(v)[0].get("temp_store").cloned();
    let v =
        t.db.query(1, "PRAGMA temp_store", vec![], &limits())
            .await
            .expect("read");
    assert_eq!(store(&v), Some(Value::Int(2)), "MEMORY");
    assert_kind(
        t.db.execute(1, "PRAGMA temp_store = FILE", vec![]).await,
        ErrorKind::PermissionDenied,
        false,
    );
    let v =
        t.db.query(1, "PRAGMA temp_store", vec![], &limits())
            .await
            .expect("read again");
    assert_eq!(store(&v), Some(Value::Int(2)), "still MEMORY");
    // Such a sort still works below the limits.
    let v =
        t.db.query(
            1,
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 20000)
             SELECT count(DISTINCT randomblob(100)) AS n FROM c",
            vec![],
            &limits(),
        )
        .await
        .expect("a small distinct set");
    assert_eq!(count_of(&v), 20000);
}
