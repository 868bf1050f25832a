//! I/O through the async host-call path (issue #18), each measured against
//! the same engine driven directly from tokio tasks in the same run:
//!
//! - `io_http`: Lua processes each making GET requests (`http_client`) to a
//!   keep-alive HTTP/1.1 server on 127.0.0.1 started here, against
//!   `warren_http::HttpClient::request` called from as many tokio tasks on
//!   `warren_core::io_runtime()`. Criterion runs 1,000 processes × 10
//!   requests per iteration; the issue's 1,000 × 100 runs three
//!   interleaved rounds after and prints both throughputs, their ratio, the
//!   median of the rounds' ratios and the connections each side opened.
//!   Goal: runtime ≥ 0.8× direct. A diagnostic row, 8 × 1,000, keeps no
//!   more requests in flight than the client keeps idle connections per
//!   host (8), so neither side reconnects.
//! - `io_sqlite`: inserts and point queries (`sql`) from 100 processes ×
//!   100 operations on one SQLite file (WAL) in a temporary directory,
//!   against the same `warren_sql::Database` called from 100 tokio tasks
//!   (criterion runs inserts 100 × 10: each commits to disk); the 100 × 100
//!   comparison is printed after. Goal: runtime ≥ 0.8× direct.
//! - memory (printed, not a criterion timing): resident-set growth per
//!   process with 10,000 processes each blocked on a request to a server
//!   that accepts and never answers (a 600 s timeout), against 10,000 idle
//!   processes blocked on their inbox; the difference is what the operation
//!   itself holds (its record, its future, the client's connection). Each
//!   is measured in a fresh copy of this binary, the server in this one, so
//!   only the client side is counted; so is 10,000 tokio tasks blocked on
//!   the same request without the runtime. The host's `max_ops_per_host` is
//!   raised to 20,000 for it (the default, 4,096, would refuse the rest).
//!
//! The Lua drivers time themselves (`time.now()`), from spawning the first
//! child to the last child's report; the direct runs from spawning the
//! first task to joining the last. Each comparison also prints the CPU
//! time this process spent per operation on each side (both cores, the
//! server's thread included): a side with the lower rate and the same CPU
//! is held back by hand-offs, one with more CPU by its own work.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use warren_benches::lua::{HOST, drive, nanos};
use warren_benches::median;
use warren_benches::memory::{cpu_time, rss_bytes, settle, thread_cpu};
use warren_core::{Grants, HostLimits, HostSpec, Runtime, RuntimeBuilder, SpawnRequest, Value};
use warren_http::{HttpClient, Request};
use warren_lua::{Databases, LuaProgram, MODULES, lua_frontend};
use warren_sql::{Database, DbConfig, Param, ResultLimits, SqliteFile};
use warren_tests::TempDir;

mod common;

#[global_allocator]
static ALLOCATOR: warren_benches::Allocator = warren_benches::Allocator {};

/// Processes (and direct tasks) of the HTTP rows.
const HTTP_PROCS: u64 = 1_000;
/// Requests per process in each criterion iteration.
const HTTP_EACH: u64 = 10;
/// Requests per process of the issue's full run, printed after criterion.
const HTTP_FULL_EACH: u64 = 100;
/// Interleaved rounds of the full run (each side takes 2–4 s a round): the
/// median of five rounds' ratios moves less with one slow spell than of three.
const HTTP_FULL_ROUNDS: usize = 5;
/// Processes (and direct tasks) of the SQLite rows.
const SQL_PROCS: u64 = 100;
/// Operations per process of the SQLite rows.
const SQL_EACH: u64 = 100;
/// Inserts per process in each criterion iteration.
const SQL_INSERT_EACH: u64 = 10;
/// Rows in the table before the point queries.
const SQL_ROWS: u64 = 10_000;
/// Processes of the memory rows.
const HELD: u64 = 10_000;
/// Idle processes and timed-out requests that warm the memory rows' child.
const WARM_N: u64 = 100;
/// Workers of the bench host: one, so that each row measures what one
/// worker's thread costs per operation. The point queries are also
/// compared on a host of one worker per core, as `warren run` starts.
const WORKERS: usize = 1;
/// The database entry of the SQLite rows.
const DB: &str = "app.db:bench";

/// Spawns `procs` children of entry `child` with `(a, b, k, driver)`, `k`
/// counting from 1, and returns the nanoseconds until each has reported
/// `ok`; a child's `failed` report fails the driver.
const DRIVER: &str = r#"local time = require("time")
return function(child, procs, a, b)
    local inbox = process.inbox()
    local me = process.pid()
    local t0 = time.now()
    for k = 1, procs do process.spawn(child, "bench:host", a, b, k, me) end
    for _ = 1, procs do
        local m = inbox:receive()
        if m:topic() ~= "ok" then error(m:payload():data()) end
    end
    return time.now():sub(t0):nanoseconds()
end"#;

/// Makes `n` GET requests to `url`, then reports.
const HTTP_CHILD: &str = r#"local http = require("http_client")
return function(url, n, _, reply)
    for _ = 1, n do
        local r, err = http.get(url)
        if not r or r.status_code ~= 200 then
            process.send(reply, "failed", tostring(err or r.status_code))
            return
        end
    end
    process.send(reply, "ok")
end"#;

/// Runs `n` inserts (`what == "insert"`) or point queries on [`DB`], then
/// reports; process `k` queries its own run of keys.
const SQL_CHILD: &str = r#"local sql = require("sql")
return function(what, n, k, reply)
    local db, err = sql.get("app.db:bench")
    if not db then process.send(reply, "failed", tostring(err)) return end
    for i = 1, n do
        local r, e
        if what == "insert" then
            r, e = db:execute("INSERT INTO kv (v) VALUES (?)", { "value" })
        else
            r, e = db:query("SELECT v FROM kv WHERE id = ?", { (k * n + i) % 10000 + 1 })
            if r and #r ~= 1 then r, e = nil, "no row" end
        end
        if not r then process.send(reply, "failed", tostring(e)) return end
    end
    process.send(reply, "ok")
end"#;

/// Waits on its inbox once.
const IDLE: &str = "return function() process.inbox():receive() end";

/// Requests `url` once with `timeout`; reports to `reply` if given.
const BLOCKED: &str = r#"local http = require("http_client")
return function(url, timeout, reply)
    http.get(url, { timeout = timeout })
    if reply then process.send(reply, "ok") end
end"#;

/// Warms what the memory rows use before their baseline: `n` idle children
/// stopped again, and `n` requests to `url` that time out.
const WARM: &str = r#"local time = require("time")
return function(n, url)
    local kids = {}
    for i = 1, n do kids[i] = process.spawn("io:idle", "bench:host") end
    time.sleep("0s")
    for i = 1, n do process.send(kids[i], "stop") end
    local inbox, me = process.inbox(), process.pid()
    for _ = 1, n do process.spawn("io:blocked", "bench:host", url, "200ms", me) end
    for _ = 1, n do inbox:receive() end
end"#;

/// Spawns `n` children (`io:idle`, or `io:blocked` on `url` for 600 s),
/// registers itself as `bench:held` once each has run to its first wait,
/// and waits.
const HOLDER: &str = r#"local time = require("time")
return function(what, n, url)
    for _ = 1, n do
        if what == "idle" then
            process.spawn("io:idle", "bench:host")
        else
            process.spawn("io:blocked", "bench:host", url, "600s")
        end
    end
    time.sleep("0s")
    process.registry.register("bench:held")
    process.inbox():receive()
end"#;

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Grants from `(action, pattern)` pairs.
fn grants(list: &[(&str, &str)]) -> Grants {
    let mut g = Grants::new();
    for (action, pattern) in list {
        g.add(action, pattern).expect("valid grant");
    }
    g
}

/// What the bench entries may reach: the local server and [`DB`].
fn io_grants() -> Grants {
    grants(&[
        ("http_client.request", "http://127.0.0.1:*"),
        ("http_client.private_ip", "127.0.0.1"),
        ("db.get", DB),
    ])
}

fn entry(id: &str, src: &str) -> warren_core::Program {
    let mut program = LuaProgram::new(id, src).with_modules(&MODULES);
    program.grants = Arc::new(io_grants());
    program.into_program(id)
}

/// A runtime with the bench entries on one host of [`WORKERS`] with
/// `limits`, and `db` (if any) given to the `sql` module.
fn runtime(limits: HostLimits, db: Option<&Arc<Database>>) -> Runtime {
    runtime_of(WORKERS, limits, db)
}

/// [`runtime`] with `workers` workers.
fn runtime_of(workers: usize, limits: HostLimits, db: Option<&Arc<Database>>) -> Runtime {
    let mut builder = RuntimeBuilder::new()
        .frontend(lua_frontend())
        .host(HostSpec::new(HOST, workers).with_limits(limits))
        .program(entry("io:driver", DRIVER))
        .program(entry("io:http", HTTP_CHILD))
        .program(entry("io:sql", SQL_CHILD))
        .program(entry("io:idle", IDLE))
        .program(entry("io:blocked", BLOCKED))
        .program(entry("io:warm", WARM))
        .program(entry("io:holder", HOLDER));
    if let Some(db) = db {
        let mut dbs = Databases::new();
        dbs.insert(db.clone());
        builder = builder.extension(Arc::new(dbs));
    }
    builder.start().expect("runtime starts")
}

// ---- the server -------------------------------------------------------

/// The answer to every request but `/never`.
const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";

/// A keep-alive HTTP/1.1 server on 127.0.0.1, on a thread of its own: it
/// answers [`RESPONSE`] to each request, except that a request for
/// `/never` is counted and never answered (its connection is held until
/// the client closes it). It runs until this process ends.
struct Server {
    port: u16,
    /// Connections accepted so far.
    accepted: Arc<AtomicUsize>,
    /// Requests for `/never` received so far.
    held: Arc<AtomicUsize>,
}

impl Server {
    fn start() -> Server {
        let accepted = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(AtomicUsize::new(0));
        let counts = (accepted.clone(), held.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("server runtime");
                rt.block_on(listen(tx, counts));
            })
            .expect("server thread");
        let port = rx.recv().expect("server listening");
        Server {
            port,
            accepted,
            held,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// Binds (with a backlog of 4,096: thousands of clients connect at once),
/// sends the port on `tx`, and accepts forever.
async fn listen(tx: std::sync::mpsc::Sender<u16>, counts: (Arc<AtomicUsize>, Arc<AtomicUsize>)) {
    let (accepted, held) = counts;
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(([127, 0, 0, 1], 0).into())
        .expect("bind 127.0.0.1");
    let listener = socket.listen(4_096).expect("listen");
    let port = listener.local_addr().expect("address").port();
    tx.send(port).expect("port sent");
    loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                accepted.fetch_add(1, Ordering::Relaxed);
                let _ = conn.set_nodelay(true);
                tokio::spawn(serve(conn, held.clone()));
            }
            // Out of descriptors: let some connections close.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Answers the requests of one connection, in order, until it closes.
async fn serve(mut conn: TcpStream, held: Arc<AtomicUsize>) {
    let mut buf = Vec::with_capacity(1_024);
    let mut chunk = [0u8; 4_096];
    loop {
        while let Some((len, never)) = parse(&buf) {
            buf.drain(..len);
            if never {
                held.fetch_add(1, Ordering::SeqCst);
                hold(conn).await;
                return;
            }
            if conn.write_all(RESPONSE).await.is_err() {
                return;
            }
        }
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads and drops whatever comes until the client closes.
async fn hold(mut conn: TcpStream) {
    let mut sink = [0u8; 64];
    while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {}
}

/// The length of the complete request at the start of `buf` (head and
/// `Content-Length` body) and whether it asks for `/never`; `None` until a
/// whole request has arrived.
fn parse(buf: &[u8]) -> Option<(usize, bool)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
    let mut lines = head.split("\r\n");
    let never = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .is_some_and(|path| path.starts_with("/never"));
    let body = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let len = end + 4 + body;
    (buf.len() >= len).then_some((len, never))
}

// ---- HTTP -------------------------------------------------------------

/// `procs` processes each making `each` requests to `url`.
fn http_runtime(rt: &Runtime, url: &str, procs: u64, each: u64) -> Duration {
    nanos(&drive(
        rt,
        "io:driver",
        vec![
            Value::str("io:http"),
            int(procs),
            Value::str(url),
            int(each),
        ],
    ))
}

/// The same requests from `procs` tokio tasks on the I/O runtime.
fn http_direct(
    client: &Arc<HttpClient>,
    grants: &Arc<Grants>,
    url: &str,
    procs: u64,
    each: u64,
) -> Duration {
    warren_core::io_runtime().block_on(async {
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..procs)
            .map(|_| {
                let (client, grants, url) = (client.clone(), grants.clone(), url.to_owned());
                tokio::spawn(async move {
                    for _ in 0..each {
                        let req = Request::new("GET", url.as_str());
                        let resp = client.request(req, &grants).await.expect("request");
                        assert_eq!(resp.status_code, 200);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        t0.elapsed()
    })
}

/// Settings for groups whose iteration is a whole run of a second or more:
/// ten samples of one iteration each, one second of warm-up.
fn long_runs(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1));
}

/// Per second, `n` in `took`.
fn rate(n: u64, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64().max(1e-9)
}

/// `rounds` interleaved runs of each side, printed as the best of each
/// side with their ratio, and the median of the rounds' own ratios (each
/// round runs both sides back to back, so a slow spell of the shared
/// machine weighs on both): what the goal is judged on.
fn compare(
    name: &str,
    unit: &str,
    n: u64,
    rounds: usize,
    mut warren: impl FnMut() -> Duration,
    mut direct: impl FnMut() -> Duration,
) {
    let (mut best_w, mut best_d) = (Duration::MAX, Duration::MAX);
    let (mut cpu_w, mut cpu_d) = (Duration::ZERO, Duration::ZERO);
    let mut ratios = Vec::with_capacity(rounds);
    let (mut threads_w, mut threads_d) = (BTreeMap::new(), BTreeMap::new());
    let timed = |run: &mut dyn FnMut() -> Duration,
                 cpu: &mut Duration,
                 threads: &mut BTreeMap<String, Duration>| {
        let (c0, t0) = (cpu_time(), thread_cpu());
        let took = run();
        *cpu += cpu_time().saturating_sub(c0);
        for (name, t) in thread_cpu() {
            let before = t0.get(&name).copied().unwrap_or_default();
            *threads.entry(name).or_default() += t.saturating_sub(before);
        }
        took
    };
    for _ in 0..rounds {
        let d = timed(&mut direct, &mut cpu_d, &mut threads_d);
        let w = timed(&mut warren, &mut cpu_w, &mut threads_w);
        (best_d, best_w) = (best_d.min(d), best_w.min(w));
        ratios.push(d.as_secs_f64() / w.as_secs_f64().max(1e-9));
    }
    let median = median(&mut ratios);
    let (w, d) = (rate(n, best_w), rate(n, best_d));
    let per_op = |cpu: Duration| cpu.as_secs_f64() * 1e6 / (n as f64 * rounds as f64);
    println!(
        "{name}: runtime {w:.0} {unit}/s, direct {d:.0} {unit}/s, ratio {:.2}, median of the \
         rounds' ratios {median:.2} (goal ≥ 0.80; {n} per run, best of {rounds}); CPU per \
         operation (this process, both cores): runtime {:.1} µs, direct {:.1} µs",
        w / d,
        per_op(cpu_w),
        per_op(cpu_d),
    );
    let by_thread = |threads: &BTreeMap<String, Duration>| {
        let parts: Vec<String> = threads
            .iter()
            .filter(|(_, t)| !t.is_zero())
            .map(|(name, t)| format!("{name} {:.1}", per_op(*t)))
            .collect();
        parts.join(", ")
    };
    println!(
        "{name}: CPU µs per operation by thread: runtime {}; direct {}",
        by_thread(&threads_w),
        by_thread(&threads_d),
    );
}

fn bench_http(c: &mut Criterion, server: &Server) {
    let rt = runtime(HostLimits::default(), None);
    let client = Arc::new(HttpClient::new().expect("client"));
    let grants = Arc::new(io_grants());
    let url = server.url("/");
    let mut group = c.benchmark_group("io_http");
    long_runs(&mut group);
    group.throughput(Throughput::Elements(HTTP_PROCS * HTTP_EACH));
    group.bench_function("runtime_1000x10", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| http_runtime(&rt, &url, HTTP_PROCS, HTTP_EACH))
                .sum()
        });
    });
    group.bench_function("direct_1000x10", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| http_direct(&client, &grants, &url, HTTP_PROCS, HTTP_EACH))
                .sum()
        });
    });
    group.finish();
    let opened = |run: &dyn Fn() -> Duration, conns: &Cell<usize>| {
        let before = server.accepted.load(Ordering::Relaxed);
        let took = run();
        conns.set(server.accepted.load(Ordering::Relaxed) - before);
        took
    };
    // Both sides start with warm connection pools: the groups above ran
    // long enough for one side's idle connections to pass the client's
    // idle timeout while the other side ran, and the comparison is of
    // steady-state throughput (the counts printed below show it).
    http_runtime(&rt, &url, HTTP_PROCS, 1);
    http_direct(&client, &grants, &url, HTTP_PROCS, 1);
    let (conns_w, conns_d) = (Cell::new(0), Cell::new(0));
    compare(
        "io_http/1000x100",
        "requests",
        HTTP_PROCS * HTTP_FULL_EACH,
        HTTP_FULL_ROUNDS,
        || {
            let run = || http_runtime(&rt, &url, HTTP_PROCS, HTTP_FULL_EACH);
            opened(&run, &conns_w)
        },
        || {
            let run = || http_direct(&client, &grants, &url, HTTP_PROCS, HTTP_FULL_EACH);
            opened(&run, &conns_d)
        },
    );
    println!(
        "io_http/1000x100: connections opened in the last round: runtime {}, direct {}",
        conns_w.get(),
        conns_d.get()
    );
    // Diagnostic: no more requests in flight than the client keeps idle
    // connections per host, so neither side reconnects.
    compare(
        "io_http/8x1000",
        "requests",
        8 * 1_000,
        2,
        || http_runtime(&rt, &url, 8, 1_000),
        || http_direct(&client, &grants, &url, 8, 1_000),
    );
}

// ---- SQLite -----------------------------------------------------------

/// [`DB`] on a new file in `dir` (WAL), with table `kv` of [`SQL_ROWS`] rows.
fn open_db(dir: &TempDir) -> Arc<Database> {
    let config = DbConfig::Sqlite {
        file: SqliteFile::Path(dir.0.join("bench.db")),
        max_lifetime: Duration::from_secs(3_600),
        query_timeout: None,
    };
    let rt = warren_core::io_runtime();
    let db = Database::open(DB, config, rt.handle().clone()).expect("database opens");
    let fill = format!(
        "CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {SQL_ROWS})
         INSERT INTO kv (v) SELECT 'value' FROM n"
    );
    rt.block_on(db.execute(0, &fill, Vec::new()))
        .expect("table filled");
    db
}

/// `procs` processes each running `each` operations (`"insert"` or
/// `"query"`).
fn sql_runtime(rt: &Runtime, what: &str, procs: u64, each: u64) -> Duration {
    nanos(&drive(
        rt,
        "io:driver",
        vec![
            Value::str("io:sql"),
            int(procs),
            Value::str(what),
            int(each),
        ],
    ))
}

/// The same operations from `procs` tokio tasks on the I/O runtime, each
/// task its own owner.
fn sql_direct(db: &Arc<Database>, what: &str, procs: u64, each: u64) -> Duration {
    let insert = what == "insert";
    warren_core::io_runtime().block_on(async {
        let t0 = Instant::now();
        let tasks: Vec<_> = (1..=procs)
            .map(|k| {
                let db = db.clone();
                tokio::spawn(async move { sql_task(&db, insert, k, each).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        t0.elapsed()
    })
}

/// One direct task: what [`SQL_CHILD`] does as process `k`.
async fn sql_task(db: &Database, insert: bool, k: u64, each: u64) {
    let limits = ResultLimits::default();
    for i in 1..=each {
        if insert {
            let params = vec![Param::text("value")];
            db.execute(k, "INSERT INTO kv (v) VALUES (?)", params)
                .await
                .expect("insert");
        } else {
            let id = i64::try_from((k * each + i) % SQL_ROWS + 1).unwrap_or(1);
            let rows = db
                .query(
                    k,
                    "SELECT v FROM kv WHERE id = ?",
                    vec![Param::Int(id)],
                    &limits,
                )
                .await
                .expect("query");
            assert!(matches!(rows, Value::Array(ref r) if r.len() == 1));
        }
    }
}

fn bench_sqlite(c: &mut Criterion) {
    let dir = TempDir::new("bench-io");
    let db = open_db(&dir);
    let rt = runtime(HostLimits::default(), Some(&db));
    let mut group = c.benchmark_group("io_sqlite");
    long_runs(&mut group);
    // Each insert commits (an fsync): 100 x 10 keeps an iteration short.
    for (what, each) in [("insert", SQL_INSERT_EACH), ("query", SQL_EACH)] {
        group.throughput(Throughput::Elements(SQL_PROCS * each));
        group.bench_function(format!("{what}_runtime_100x{each}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| sql_runtime(&rt, what, SQL_PROCS, each))
                    .sum()
            });
        });
        group.bench_function(format!("{what}_direct_100x{each}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| sql_direct(&db, what, SQL_PROCS, each))
                    .sum()
            });
        });
    }
    group.finish();
    // Queries are short and noisy: more rounds.
    for (what, rounds) in [("insert", 2), ("query", 9)] {
        compare(
            &format!("io_sqlite/{what}_100x100"),
            "ops",
            SQL_PROCS * SQL_EACH,
            rounds,
            || sql_runtime(&rt, what, SQL_PROCS, SQL_EACH),
            || sql_direct(&db, what, SQL_PROCS, SQL_EACH),
        );
    }
    drop(rt);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let rt = runtime_of(cores, HostLimits::default(), Some(&db));
    compare(
        &format!("io_sqlite/query_100x100 ({cores} workers, as `warren run`)"),
        "ops",
        SQL_PROCS * SQL_EACH,
        9,
        || sql_runtime(&rt, "query", SQL_PROCS, SQL_EACH),
        || sql_direct(&db, "query", SQL_PROCS, SQL_EACH),
    );
}

// ---- memory -----------------------------------------------------------

/// The environment variable that makes this binary a measuring child:
/// `<what>:<n>:<url>`, `what` one of `idle`, `blocked` and `direct`.
const CHILD_VAR: &str = "WARREN_BENCH_IO_CHILD";
/// The prefix of the child's answer on its standard output.
const ANSWER: &str = "warren-bench-io:";

/// Resident-set growth per process with `n` processes held (`what` is
/// `idle` or `blocked`; `direct`: per tokio task blocked on the same
/// request without the runtime), measured in a fresh copy of this binary (the
/// allocator keeps pages an earlier scenario freed). The child waits for a
/// line on its standard input before it measures: sent once `server` has
/// received every blocked request.
fn held_in_child(what: &str, n: u64, server: &Server) -> u64 {
    let exe = std::env::current_exe().expect("this binary's path");
    let spec = format!("{what}:{n}:{}", server.url("/never"));
    let before = server.held.load(Ordering::SeqCst);
    let mut child = std::process::Command::new(exe)
        .env(CHILD_VAR, spec)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("the measuring child runs");
    if what != "idle" {
        // The warm-up's requests count too; they end before the held ones.
        let want = before + usize::try_from(n + WARM_N).unwrap_or(usize::MAX);
        let deadline = Instant::now() + Duration::from_secs(300);
        while server.held.load(Ordering::SeqCst) < want {
            assert!(
                Instant::now() < deadline,
                "the blocked requests did not all arrive"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut stdin = child.stdin.take().expect("child stdin");
    writeln!(stdin, "measure").expect("child told to measure");
    let out = child.wait_with_output().expect("child answered");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(ANSWER))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("child {what}:{n} gave no answer ({})", out.status))
}

/// In the child: holds the processes, waits for the parent's word, and
/// prints the growth per process.
fn child_main() {
    let Ok(spec) = std::env::var(CHILD_VAR) else {
        return;
    };
    let mut parts = spec.splitn(3, ':');
    let (what, n, url) = match (parts.next(), parts.next(), parts.next()) {
        (Some(w), Some(n), Some(u)) => (w.to_owned(), n.parse::<u64>().expect("a count"), u),
        _ => panic!("bad {CHILD_VAR}: {spec}"),
    };
    if what == "direct" {
        direct_child(n, url);
    }
    let limits = HostLimits {
        max_processes: 50_000,
        max_ops_per_host: 20_000,
        ..HostLimits::default()
    };
    let rt = runtime(limits, None);
    drive(&rt, "io:warm", vec![int(WARM_N), Value::str(url)]);
    settle();
    let before = rss_bytes();
    rt.spawn(SpawnRequest::new(
        "io:holder",
        HOST,
        vec![Value::str(&what), int(n), Value::str(url)],
    ))
    .expect("holder spawns");
    let deadline = Instant::now() + Duration::from_secs(300);
    while rt.lookup("bench:held").is_none() {
        assert!(Instant::now() < deadline, "{what} did not get ready");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut line = String::new();
    let _ = BufReader::new(std::io::stdin()).read_line(&mut line);
    settle();
    let grown = rss_bytes().saturating_sub(before);
    println!("{ANSWER}{}", grown / n.max(1));
    std::process::exit(0);
}

/// In the child: `n` tokio tasks on the I/O runtime each blocked on a
/// request to `url` through the same client, without the runtime; prints
/// the growth per task and exits.
fn direct_child(n: u64, url: &str) -> ! {
    let client = Arc::new(HttpClient::new().expect("client"));
    let grants = Arc::new(io_grants());
    let io = warren_core::io_runtime();
    let request = move |timeout: Duration| {
        let (client, grants) = (client.clone(), grants.clone());
        let mut req = Request::new("GET", url);
        req.timeout = timeout;
        io.spawn(async move {
            let _ = client.request(req, &grants).await;
        })
    };
    let warm: Vec<_> = (0..WARM_N)
        .map(|_| request(Duration::from_millis(200)))
        .collect();
    for task in warm {
        io.block_on(task).expect("warm-up request");
    }
    settle();
    let before = rss_bytes();
    let held: Vec<_> = (0..n).map(|_| request(Duration::from_secs(600))).collect();
    let mut line = String::new();
    let _ = BufReader::new(std::io::stdin()).read_line(&mut line);
    settle();
    let grown = rss_bytes().saturating_sub(before);
    println!("{ANSWER}{}", grown / n.max(1));
    drop(held);
    std::process::exit(0);
}

/// The size of the future of one direct request: what its task holds
/// before anything the future allocates.
fn request_future_bytes() -> usize {
    let client = HttpClient::new().expect("client");
    let grants = io_grants();
    let fut = client.request(Request::new("GET", "http://127.0.0.1:1/"), &grants);
    std::mem::size_of_val(&fut)
}

fn report_memory(server: &Server) {
    let idle = held_in_child("idle", HELD, server);
    let blocked = held_in_child("blocked", HELD, server);
    let direct = held_in_child("direct", HELD, server);
    println!("io_memory/idle: {idle} bytes of RSS per idle process ({HELD} processes)");
    println!(
        "io_memory/blocked_http: {blocked} bytes of RSS per process blocked on a request \
         ({HELD} processes, max_ops_per_host raised to 20,000); the operation holds {} bytes",
        blocked.saturating_sub(idle)
    );
    println!(
        "io_memory/direct_blocked_http: {direct} bytes of RSS per tokio task blocked on the \
         same request without the runtime ({HELD} tasks; the request's future alone is {} bytes)",
        request_future_bytes()
    );
}

fn main() {
    warren_alloc::configure();
    child_main();
    let server = Server::start();
    report_memory(&server);
    let mut c = common::criterion(10);
    bench_http(&mut c, &server);
    bench_sqlite(&mut c);
    c.final_summary();
}
