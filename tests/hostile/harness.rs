//! Runs one attack next to an unrelated process and reports both.
//!
//! Every case runs on a host with one worker and tight limits
//! ([`limits`]): a judge process starts a neighbour that counts 1 ms
//! ticks, starts the attacker monitored, waits for its exit, and reads the
//! neighbour's count before the attack, when it ended, and 20 ms later. So
//! each case can assert how the attacker ended and that the neighbour, on
//! the same worker, kept ticking during and after the attack.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use warren_core::{ErrorKind, HostLimits, ProcError, Runtime, Value};
use warren_tests::{App, run_on};

/// The neighbour: ticks every millisecond, answers "count" with its ticks.
pub const NEIGHBOUR: &str = r#"
local time = require("time")
return function()
    local n = 0
    local inbox = process.inbox()
    while true do
        local r = channel.select({ inbox:case_receive(), time.after("1ms"):case_receive() })
        if r.channel == inbox then
            if r.value:topic() == "stop" then return n end
            process.send(r.value:from(), "count", n)
        else
            n = n + 1
        end
    end
end"#;

/// The judge: runs entry `id` with the remaining arguments as the attacker.
pub const JUDGE: &str = r#"
local time = require("time")
return function(id, ...)
    local nb = process.spawn("h:neighbour", "test:host")
    local inbox = process.inbox()
    local function count()
        process.send(nb, "count")
        local r = channel.select({ inbox:case_receive(), time.after("20s"):case_receive() })
        assert(r.channel == inbox, "the neighbour stopped answering")
        return r.value:payload():data()
    end
    local before = count()
    local attacker = process.spawn_monitored(id, "test:host", ...)
    local events = process.events()
    local r = channel.select({ events:case_receive(), time.after("30s"):case_receive() })
    assert(r.channel == events, "the attacker did not end within 30 s")
    local ended = count()
    time.sleep("20ms")
    local later = count()
    process.send(nb, "stop")
    local res = r.value.result
    local out = { during = ended - before, after = later - ended, attacker = attacker }
    if res.error then
        out.kind, out.message = res.error:kind(), res.error:message()
    else
        out.value = res.value
    end
    return out
end"#;

/// Default limits but for `allow_hosts`, which lists `hosts`: for the
/// runtimes of three or more hosts some cases build themselves.
pub fn reaching(hosts: &[&str]) -> HostLimits {
    HostLimits {
        allow_hosts: Some(hosts.iter().map(|h| (*h).to_owned()).collect()),
        ..HostLimits::default()
    }
}

/// Lua entry `id` allowed every module, for such runtimes.
pub fn lua_program(id: &str, source: &str) -> warren_core::Program {
    warren_lua::LuaProgram::new(format!("{id}.lua"), source)
        .with_modules(&warren_lua::MODULES)
        .into_program(id)
}

/// The limits every case runs under: small enough that attacks hit them fast.
pub fn limits() -> HostLimits {
    HostLimits {
        max_processes: 50,
        memory_per_process: 8 << 20,
        memory_total: 256 << 20,
        cpu_slice: Duration::from_millis(2),
        cpu_budget: Some(Duration::from_millis(300)),
        max_message_bytes: 64 << 10,
        mailbox_limit: 100,
        allow_hosts: Some(Vec::new()),
        max_ops_per_process: 8,
        max_ops_per_host: 32,
        max_open_handles: 16,
        max_handles_per_host: 128,
    }
}

/// How an attack went.
#[derive(Debug)]
pub struct Outcome {
    /// How the attacker ended.
    pub exit: Result<Value, ProcError>,
    /// Neighbour ticks while the attack ran.
    pub during: i64,
    /// Neighbour ticks in the 20 ms after it.
    pub after: i64,
    /// How long the case took once it held its lock (see [`MACHINE`]):
    /// starting its runtime if it started one, and judging the attack.
    /// Waiting for the lock is not the attack's: a case run [`alone`]
    /// elsewhere holds it for seconds.
    pub took: Duration,
}

impl Outcome {
    /// The attacker's error; panics if it ended normally.
    pub fn error(&self) -> &ProcError {
        match &self.exit {
            Err(e) => e,
            Ok(v) => panic!("the attacker ended normally with {v:?}"),
        }
    }

    /// Asserts the attacker ended with `kind` and a message containing `text`,
    /// and that the neighbour still ticks.
    pub fn assert_ended(&self, kind: ErrorKind, text: &str) {
        let err = self.error();
        assert_eq!(err.kind, kind, "{err}");
        assert!(err.message.contains(text), "{text:?} not in {err}");
        self.assert_neighbour_ticks();
    }

    /// The attacker's result as a string; panics otherwise.
    pub fn value(&self) -> String {
        match &self.exit {
            Ok(v) => v
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{v:?}")),
            Err(e) => panic!("the attacker failed: {e}"),
        }
    }

    /// The neighbour ticked after the attack (it is alive and scheduled).
    pub fn assert_neighbour_ticks(&self) {
        assert!(self.after > 0, "the neighbour stopped ticking: {self:?}");
    }

    /// The neighbour ticked at least `n` times while the attack ran.
    pub fn assert_progress_during(&self, n: i64) {
        assert!(
            self.during >= n,
            "the neighbour starved during the attack: {self:?}"
        );
        self.assert_neighbour_ticks();
    }
}

/// Started after every attack: the runtime still starts processes.
pub const ALIVE: &str = r#"return function() return "alive" end"#;

/// The app every case starts from: the judge, the neighbour and the
/// after-attack check.
pub fn app() -> App {
    App::new()
        .limits(limits())
        // The judge runs attackers of any namespace (`t:main` of the
        // `funcs` cases): as trusted code, with the grant for it.
        .granted(
            "h:judge",
            JUDGE,
            warren_tests::grants(&[("process.spawn", "*")]),
        )
        .entry("h:neighbour", NEIGHBOUR)
        .entry("h:alive", ALIVE)
}

/// Runs `attacker` (an entry of `app`) with `args` as the attack; the
/// runtime is stopped before another test may run [`alone`] (a worker
/// still busy with an ended attack would share its cores).
///
/// An attack that wedges its worker fails the case (the judge does not end
/// within [`warren_tests::DEADLINE`]) instead of hanging the binary: the
/// runtime, whose wedged worker would never be joined, is then leaked.
pub fn attack(app: App, attacker: &str, args: Vec<Value>) -> Outcome {
    let _shared = shared();
    let started = Instant::now();
    let runtime = app.start();
    let judged = catch_unwind(AssertUnwindSafe(|| judge(&runtime, attacker, args)));
    match judged {
        Ok(out) => {
            drop(runtime);
            Outcome {
                took: started.elapsed(),
                ..out
            }
        }
        Err(panic) => {
            std::mem::forget(runtime);
            resume_unwind(panic)
        }
    }
}

/// Attacks of this binary run under a read lock; a test that times a
/// bound (one host call under the stuck limit, a hash under 200 ms) runs
/// [`alone`] under the write lock: the other tests share the machine's two
/// cores, its memory bandwidth and this process's page-table lock, which
/// is not what such a test measures.
static MACHINE: RwLock<()> = RwLock::new(());

thread_local! {
    /// Set while this thread's test runs [`alone`].
    static ALONE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `test` while no other attack of this binary runs (see
/// [`MACHINE`]).
pub fn alone<R>(test: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            ALONE.set(false);
        }
    }
    let _machine = MACHINE.write().unwrap_or_else(PoisonError::into_inner);
    ALONE.set(true);
    let _reset = Reset;
    test()
}

/// The read lock of [`MACHINE`], unless this thread's test runs [`alone`].
fn shared() -> Option<RwLockReadGuard<'static, ()>> {
    (!ALONE.get()).then(|| MACHINE.read().unwrap_or_else(PoisonError::into_inner))
}

/// Runs `attacker` on a started runtime (made from [`app`]).
pub fn attack_on(runtime: &Runtime, attacker: &str, args: Vec<Value>) -> Outcome {
    let _shared = shared();
    judge(runtime, attacker, args)
}

/// [`attack_on`] under whatever lock the caller holds.
fn judge(runtime: &Runtime, attacker: &str, args: Vec<Value>) -> Outcome {
    let started = Instant::now();
    let mut all = vec![Value::str(attacker)];
    all.extend(args);
    let report = match run_on(runtime, "h:judge", all) {
        Ok(v) => v,
        Err(e) => panic!("the judge failed: {e}"),
    };
    let alive = run_on(runtime, "h:alive", Vec::new());
    assert_eq!(
        alive,
        Ok(Value::str("alive")),
        "the runtime cannot start a process after the attack"
    );
    let int = |k: &str| match report.get(k) {
        Some(Value::Int(n)) => *n,
        other => panic!("{k} = {other:?} in {report:?}"),
    };
    let exit = match report.get("kind").and_then(Value::as_str) {
        Some(kind) => Err(ProcError::new(
            ErrorKind::from_name(kind),
            report
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )),
        None => Ok(report.get("value").cloned().unwrap_or_default()),
    };
    Outcome {
        exit,
        during: int("during"),
        after: int("after"),
        took: started.elapsed(),
    }
}

/// Runs the Lua script `source` as the attack, with `args`.
pub fn lua(source: &str, args: Vec<Value>) -> Outcome {
    attack(app().entry("h:attacker", source), "h:attacker", args)
}

/// Runs the `hostile` component as the attack, with `args`.
pub fn wasm(args: Vec<Value>) -> Outcome {
    attack(app().component("h:attacker", "hostile"), "h:attacker", args)
}

/// A string argument.
pub fn s(text: &str) -> Value {
    Value::str(text)
}

/// An integer argument.
pub fn n(v: i64) -> Value {
    Value::Int(v)
}

/// The threads of this test process, by id (to tell a runtime's threads:
/// those that appear when it starts).
pub fn threads() -> std::collections::BTreeSet<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect()
}

/// The CPU time of each of `tids` still alive (`/proc/self/task/*/stat`,
/// in ticks of 10 ms).
pub fn cpu_of(
    tids: &std::collections::BTreeSet<String>,
) -> std::collections::BTreeMap<String, Duration> {
    let mut out = std::collections::BTreeMap::new();
    for tid in tids {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")) else {
            continue;
        };
        let Some(end) = stat.rfind(')') else { continue };
        let fields: Vec<&str> = stat[end + 2..].split(' ').collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        if let (Some(user), Some(system)) = (ticks(11), ticks(12)) {
            out.insert(tid.clone(), Duration::from_millis((user + system) * 10));
        }
    }
    out
}

/// Sends `to` `count` messages of 60 KB (200 by default), each tried again
/// while `to`'s mailbox is full. Run on another host (`allow_hosts` must
/// let it reach `to`'s): what a process is sent is charged to it as it
/// arrives, so receiving such messages (and dropping them) takes its
/// charge past its limit, and it is measured, while its own code does next
/// to nothing.
pub const SENDER: &str = r#"local time = require("time")
return function(to, count)
    for i = 1, count or 200 do
        local m = string.rep("s", 60000) .. i
        for _ = 1, 5000 do
            local ok, sent = pcall(process.send, to, "big", m)
            if ok and sent then break end
            time.sleep("1ms")
        end
    end
end"#;

/// Databases `app.db:<name>` on SQLite files in `dir`, each with the
/// `query_timeout` that `timeout` gives for its name.
pub fn sqlite_dbs_timed(
    dir: &warren_tests::TempDir,
    names: &[&str],
    timeout: impl Fn(&str) -> Option<Duration>,
) -> std::sync::Arc<warren_lua::Databases> {
    let mut dbs = warren_lua::Databases::new();
    let rt = warren_core::io_runtime().handle().clone();
    for name in names {
        let config = warren_sql::DbConfig::Sqlite {
            file: warren_sql::SqliteFile::Path(dir.0.join(format!("{name}.db"))),
            max_lifetime: Duration::from_secs(3600),
            query_timeout: timeout(name),
        };
        let db = warren_sql::Database::open(&format!("app.db:{name}"), config, rt.clone());
        dbs.insert(db.expect("open"));
    }
    std::sync::Arc::new(dbs)
}

/// Databases `app.db:<name>` on SQLite files in `dir`, no `query_timeout`.
pub fn sqlite_dbs(
    dir: &warren_tests::TempDir,
    names: &[&str],
) -> std::sync::Arc<warren_lua::Databases> {
    sqlite_dbs_timed(dir, names, |_| None)
}
