//! Shared helpers for the end-to-end tests: build a runtime with a few Lua
//! entries on one host, run one as the main process, and get its exit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use warren_core::{
    Exit, HostLimits, HostSpec, Program, Runtime, RuntimeBuilder, SpawnRequest, Value,
};
use warren_lua::{LuaProgram, MODULES, lua_frontend};
use warren_wasm::{EngineConfig, Grants, WasmEngine, wasm_frontend};

/// The host every test entry runs on.
pub const HOST: &str = "test:host";

/// The second host of every test runtime.
pub const OTHER_HOST: &str = "test:other";

/// How long a test process may run before the test fails instead of hanging.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Builds the guest components under `components/` (once per test binary)
/// and returns the path of `<name>.wasm`.
pub fn component(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../components");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = std::process::Command::new(cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(root.join("Cargo.toml"))
            // Where the tests and the examples look for them, whatever
            // CARGO_TARGET_DIR the outer build uses.
            .arg("--target-dir")
            .arg(root.join("target"))
            .current_dir(&root) // so that components/.cargo/config.toml applies
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(root.join("target/wasm32-wasip2/release"))
    });
    match dir {
        Ok(dir) => dir.join(format!("{name}.wasm")),
        Err(e) => panic!("building the components failed:\n{e}"),
    }
}

/// The engine shared by the tests of one binary.
pub fn engine() -> Arc<WasmEngine> {
    static ENGINE: OnceLock<Arc<WasmEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm-cache");
            let config = EngineConfig {
                cache_dir: Some(cache),
                ..EngineConfig::default()
            };
            WasmEngine::new(&config).expect("engine")
        })
        .clone()
}

/// A set of Lua and WASM entries to run together.
#[derive(Default)]
pub struct App {
    entries: Vec<(String, LuaProgram)>,
    programs: Vec<Program>,
    workers: usize,
    limits: HostLimits,
    other_limits: HostLimits,
    extensions: Vec<Extension>,
    functions: warren_core::Functions,
}

/// Adds one shared module value to a runtime being built.
type Extension = Box<dyn FnOnce(RuntimeBuilder) -> RuntimeBuilder>;

impl App {
    /// An app on a host with one worker.
    pub fn new() -> Self {
        App {
            entries: Vec::new(),
            programs: Vec::new(),
            workers: 1,
            limits: HostLimits::default(),
            other_limits: HostLimits::default(),
            extensions: Vec::new(),
            functions: warren_core::Functions::new(),
        }
    }

    /// Adds `function.lua` entry `id`: `method` of `source` (a table of
    /// functions), every module allowed, its own `grants`, run in `pool`.
    pub fn function(
        mut self,
        (id, method): (&str, &str),
        source: &str,
        pool: warren_core::Pool,
        grants: warren_core::Grants,
    ) -> Self {
        let mut program = LuaProgram::new(format!("{id}.lua"), source).with_modules(&MODULES);
        program.method = method.into();
        program.grants = Arc::new(grants);
        self.entries.push((id.to_owned(), program));
        self.functions.insert(id, pool);
        self
    }

    /// Adds entry `id` with every module allowed and `grants`.
    pub fn granted(mut self, id: &str, source: &str, grants: warren_core::Grants) -> Self {
        let mut program = LuaProgram::new(format!("{id}.lua"), source).with_modules(&MODULES);
        program.grants = Arc::new(grants);
        self.entries.push((id.to_owned(), program));
        self
    }

    /// Gives the `sql` module these databases.
    pub fn databases(self, dbs: Arc<warren_lua::Databases>) -> Self {
        self.extension(dbs)
    }

    /// Shares `value` with the modules (volumes, variables, ...).
    pub fn extension<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        self.extensions.push(Box::new(move |b| b.extension(value)));
        self
    }

    /// Sets the limits of the test host.
    pub fn limits(mut self, limits: HostLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the test host's `max_message_bytes`, its other limits the
    /// defaults.
    pub fn max_message_bytes(self, bytes: usize) -> Self {
        self.limits(HostLimits {
            max_message_bytes: bytes,
            ..HostLimits::default()
        })
    }

    /// Sets the limits of the second host, `test:other`.
    pub fn other_limits(mut self, limits: HostLimits) -> Self {
        self.other_limits = limits;
        self
    }

    /// Uses `n` workers on the host.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Adds entry `id` with every module allowed.
    pub fn entry(self, id: &str, source: &str) -> Self {
        self.entry_with(id, source, &MODULES)
    }

    /// Adds entry `id` allowing only `modules`.
    pub fn entry_with(mut self, id: &str, source: &str, modules: &[&str]) -> Self {
        let program = LuaProgram::new(format!("{id}.lua"), source).with_modules(modules);
        self.entries.push((id.to_owned(), program));
        self
    }

    /// Adds entry `id` running the component `name` from `components/`.
    pub fn component(mut self, id: &str, name: &str) -> Self {
        let program = engine().load(&component(name)).expect("component loads");
        self.programs.push(program.into_program(id));
        self
    }

    /// Adds entry `id` running the component `name` with `grants`.
    pub fn component_granted(mut self, id: &str, name: &str, grants: Grants) -> Self {
        let program = engine()
            .load_granted(&component(name), grants)
            .expect("component loads");
        self.programs.push(program.into_program(id));
        self
    }

    /// Adds an already-built program.
    pub fn program(mut self, program: Program) -> Self {
        self.programs.push(program);
        self
    }

    /// Starts the runtime.
    pub fn start(self) -> Runtime {
        let mut builder = RuntimeBuilder::new()
            .frontend(lua_frontend())
            .frontend(wasm_frontend())
            .host(HostSpec::new(HOST, self.workers).with_limits(self.limits))
            .host(HostSpec::new(OTHER_HOST, 1).with_limits(self.other_limits));
        for add in self.extensions {
            builder = add(builder);
        }
        builder = builder.extension(Arc::new(self.functions));
        for (id, program) in self.entries {
            builder = builder.program(program.into_program(id));
        }
        for program in self.programs {
            builder = builder.program(program);
        }
        builder.start().expect("runtime starts")
    }

    /// Runs entry `main` with `args` and returns how it ended.
    pub fn run(self, main: &str, args: Vec<Value>) -> Exit {
        let runtime = self.start();
        run_on(&runtime, main, args)
    }
}

/// Runs `main` on an existing runtime; panics if it does not end in time.
pub fn run_on(runtime: &Runtime, main: &str, args: Vec<Value>) -> Exit {
    runtime
        .run(SpawnRequest::new(main, HOST, args), DEADLINE)
        .expect("spawn accepted")
        .unwrap_or_else(|| panic!("{main} did not finish within {DEADLINE:?}"))
}

/// Runs a single script as `t:main` and returns how it ended.
pub fn run_script(source: &str) -> Exit {
    App::new().entry("t:main", source).run("t:main", Vec::new())
}

/// Runs a script that must exit normally and returns its result.
pub fn ok(source: &str) -> Value {
    match run_script(source) {
        Ok(v) => v,
        Err(e) => panic!("script failed: {e}"),
    }
}

/// Runs a script that must fail and returns the error message.
pub fn fails(source: &str) -> warren_core::ProcError {
    match run_script(source) {
        Ok(v) => panic!("script succeeded with {v:?}"),
        Err(e) => e,
    }
}

/// Grants from `(action, pattern)` pairs (modules.md, "Grants").
pub fn grants(list: &[(&str, &str)]) -> warren_core::Grants {
    let mut g = warren_core::Grants::new();
    for (action, pattern) in list {
        g.add(action, pattern).expect("valid grant");
    }
    g
}

/// A string value.
pub fn s(text: &str) -> Value {
    Value::str(text)
}

/// The strings of a list value (what probe components return), `?` for
/// anything not a string; panics if `v` is not a list.
pub fn strings(v: Value) -> Vec<String> {
    let Value::Array(items) = v else {
        panic!("not a list: {v:?}")
    };
    items
        .iter()
        .map(|i| i.as_str().unwrap_or("?").to_owned())
        .collect()
}

/// A Lua echo: answers every message to its sender on the same topic, until
/// a message on topic "stop".
pub const LUA_ECHO: &str = r#"return function()
    local inbox = process.inbox()
    while true do
        local msg = inbox:receive()
        if msg:topic() == "stop" then return 0 end
        process.send(msg:from(), msg:topic(), msg:payload():data())
    end
end"#;

/// A fresh temporary directory, removed with what it holds when dropped.
/// Named after `tag`, this process and a sequence number, so tests and
/// benches running at once never share one.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("warren-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The resident set size of this process, in bytes (Linux `/proc`).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
