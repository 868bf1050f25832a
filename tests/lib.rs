//! Shared helpers for the end-to-end tests: build a runtime with a few Lua
//! entries on one host, run one as the main process, and get its exit.

use std::time::Duration;

use warren_core::{Exit, HostSpec, Runtime, RuntimeBuilder, SpawnRequest, Value};
use warren_lua::{LuaProgram, MODULES, lua_frontend};

/// The host every test entry runs on.
pub const HOST: &str = "test:host";

/// How long a test process may run before the test fails instead of hanging.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A set of Lua entries to run together.
#[derive(Default)]
pub struct App {
    entries: Vec<(String, LuaProgram)>,
    workers: usize,
}

impl App {
    /// An app on a host with one worker.
    pub fn new() -> Self {
        App {
            entries: Vec::new(),
            workers: 1,
        }
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

    /// Starts the runtime.
    pub fn start(self) -> Runtime {
        let mut builder = RuntimeBuilder::new()
            .frontend(lua_frontend())
            .host(HostSpec {
                name: HOST.into(),
                workers: self.workers,
            })
            .host(HostSpec {
                name: "test:other".into(),
                workers: 1,
            });
        for (id, program) in self.entries {
            builder = builder.program(program.into_program(id));
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

/// A string value.
pub fn s(text: &str) -> Value {
    Value::str(text)
}
