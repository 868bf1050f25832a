//! `warren run`: build a runtime from an application folder or a single
//! script, run the main process, and exit with its outcome.
//!
//! With `-x`, the entry runs on the application's `terminal.host` when it
//! has one (as Wippy's `run -x` does), else on its only host; `--host`
//! chooses another. An application with services starts them first
//! (see [`crate::exec`]).

use std::path::Path;

use anyhow::{Context, anyhow};
use warren_config::{App, HostEntry, WasmEntry};
use warren_core::grants::Grants as ActionGrants;
use warren_core::{
    HostLimits, HostSpec, Pid, Program, Runtime, RuntimeBuilder, SpawnRequest, Value,
};
use warren_lua::{LuaProgram, MODULES, lua_frontend};
use warren_wasm::{
    DEFAULT_MAX_MEMORY, DEFAULT_POOL_SIZE, DirGrant, EngineConfig, Grants, WasmEngine,
    wasm_frontend,
};

use crate::Failure;

/// The host scripts (and apps that declare none) run on.
const DEFAULT_HOST: &str = "warren:default";
/// The entry id a single script runs as.
const SCRIPT_ENTRY: &str = "script:main";

pub(crate) fn run(
    path: &Path,
    entry: Option<String>,
    host: Option<String>,
    grant_flags: &[String],
    args: Vec<String>,
) -> Result<(), Failure> {
    let granted = parse_grants(grant_flags)?;
    if !grant_flags.is_empty() && path.extension().is_none_or(|e| e != "lua") {
        return Err(Failure::bad_input(anyhow!(
            "--grant goes with a .lua script: an application's processes hold the grants: of their entries and hosts"
        )));
    }
    // What `io.args()` returns to a process of a terminal host.
    warren_lua::set_terminal_args(args.clone());
    let args: Vec<Value> = args.into_iter().map(Value::str).collect();
    if path.extension().is_some_and(|e| e == "wasm") {
        if entry.is_some() {
            return Err(Failure::bad_input(anyhow!(
                "-x needs an application folder, not a component"
            )));
        }
        return run_component(path, host, args);
    }
    if path.extension().is_some_and(|e| e == "lua") {
        if entry.is_some() {
            return Err(Failure::bad_input(anyhow!(
                "-x needs an application folder, not a script"
            )));
        }
        return run_script(path, host, granted, args);
    }
    if !path.is_dir() {
        return Err(Failure::bad_input(anyhow!(
            "{}: not an application folder or a .lua script",
            path.display()
        )));
    }
    let app = App::load(path, &MODULES).map_err(|problems| {
        let first = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\ncaused by: ");
        Failure::bad_input(
            anyhow!("{first}").context(format!("cannot load application {}", path.display())),
        )
    })?;
    crate::check::compile_all(&app, path)?;
    let Some(entry) = entry else {
        if app.services().next().is_none() {
            let msg = anyhow!(
                "{}: nothing to start: the application declares no process.service entries; run one entry with -x <entry>",
                path.display()
            );
            return Err(Failure::bad_input(msg));
        }
        if !args.is_empty() || host.is_some() {
            return Err(Failure::bad_input(anyhow!(
                "arguments and --host go with -x <entry>"
            )));
        }
        return crate::services::run(&app, build_runtime(&app)?);
    };
    run_app(&app, &entry, host, args)
}

/// The entry id a single component runs as.
const COMPONENT_ENTRY: &str = "component:main";

/// The engine for this run, caching compiled components between runs
/// (under `$WARREN_CACHE_DIR`, else `$XDG_CACHE_HOME/warren` or
/// `~/.cache/warren`), with `$WARREN_WASM_POOL` pooled instances (default
/// [`DEFAULT_POOL_SIZE`]; 0 allocates on demand). Its memory slots fit the
/// largest `limits.memory` of `app`'s entries. `$WARREN_WASM_PERFMAP=1`
/// names compiled guest functions for `perf` (`/tmp/perf-<pid>.map`).
pub(crate) fn wasm_engine(app: Option<&App>) -> Result<std::sync::Arc<WasmEngine>, Failure> {
    let cache = std::env::var_os("WARREN_CACHE_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(std::path::PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache"))
                })
                .map(|base| base.join("warren"))
        });
    let largest = app
        .into_iter()
        .flat_map(|a| a.wasm_entries())
        .filter_map(|(_, w)| w.memory)
        .max()
        .unwrap_or(0);
    let pool_size = match std::env::var("WARREN_WASM_POOL") {
        Ok(v) => v.parse().map_err(|_| {
            Failure::bad_input(anyhow!(
                "WARREN_WASM_POOL={v:?}: expected a number of instances (0: on demand)"
            ))
        })?,
        Err(_) => DEFAULT_POOL_SIZE,
    };
    let mut config = EngineConfig {
        cache_dir: cache,
        pool_size,
        max_memory: largest.max(DEFAULT_MAX_MEMORY),
        perf_map: std::env::var_os("WARREN_WASM_PERFMAP").is_some_and(|v| v == "1"),
    };
    // The entry whose `limits.memory` sized the pool's slots, to name.
    let sizing = app
        .into_iter()
        .flat_map(|a| a.wasm_entries())
        .find(|(_, w)| w.memory == Some(largest) && largest > DEFAULT_MAX_MEMORY)
        .map(|(id, _)| id.to_owned());
    match WasmEngine::new(&config) {
        Ok(engine) => Ok(engine),
        // A pool of slots that large may not fit in the address space
        // (`limits.memory: 2GiB` times the pool did not, and the whole
        // application failed to start): instances are then made on demand.
        Err(e) if config.pool_size > 0 && sizing.is_some() => {
            let entry = sizing.unwrap_or_default();
            tracing::warn!(
                "entry '{entry}': limits.memory of {largest} bytes for {} pooled instances cannot be reserved ({e}); instances are allocated on demand",
                config.pool_size
            );
            config.pool_size = 0;
            WasmEngine::new(&config).map_err(|e| {
                Failure::bad_input(anyhow!(
                    "entry '{entry}': limits.memory of {largest} bytes cannot be reserved: {e}"
                ))
            })
        }
        Err(e) => Err(Failure::failed(e.into())),
    }
}

/// What a `process.wasm` entry grants its component.
pub(crate) fn grants(wasm: &WasmEntry) -> Grants {
    Grants {
        dirs: wasm
            .dirs
            .iter()
            .map(|d| DirGrant {
                host: d.host.clone(),
                guest: d.guest.clone(),
                writable: d.writable,
            })
            .collect(),
        env: wasm.env.clone(),
        network: wasm.network,
        memory: wasm.memory,
    }
}

fn run_component(path: &Path, host: Option<String>, args: Vec<Value>) -> Result<(), Failure> {
    if let Some(host) = host.filter(|h| h != DEFAULT_HOST) {
        return Err(Failure::bad_input(anyhow!(
            "host '{host}' not found: a component runs on {DEFAULT_HOST}"
        )));
    }
    let program = wasm_engine(None)?
        .load(path)
        .map_err(|e| Failure::bad_input(e.into()))?;
    run_single(program.into_program(COMPONENT_ENTRY), args)
}

/// Runs one program as the main process on the default host.
fn run_single(program: Program, args: Vec<Value>) -> Result<(), Failure> {
    let entry = program.id.clone();
    let runtime = RuntimeBuilder::new()
        .frontend(lua_frontend())
        .frontend(wasm_frontend())
        // A script run from the command line owns the terminal (`io`).
        .host(HostSpec::new(DEFAULT_HOST, warren_config::default_workers()).terminal())
        .program(program)
        .start()
        .context("cannot start the runtime")
        .map_err(Failure::failed)?;
    run_main(
        &runtime,
        SpawnRequest::new(entry, DEFAULT_HOST, args),
        false,
    )
}

/// The grants of `--grant ACTION=PATTERN` flags; a malformed flag, an
/// unknown action or a bad pattern is bad input naming it.
pub(crate) fn parse_grants(flags: &[String]) -> Result<ActionGrants, Failure> {
    let mut granted = ActionGrants::new();
    for flag in flags {
        let Some((action, pattern)) = flag.split_once('=') else {
            return Err(Failure::bad_input(anyhow!(
                "--grant {flag:?}: expected ACTION=PATTERN, e.g. env.get=APP_*"
            )));
        };
        granted
            .add(action, pattern)
            .map_err(|e| Failure::bad_input(anyhow!("--grant {flag:?}: {e}")))?;
    }
    Ok(granted)
}

fn run_script(
    path: &Path,
    host: Option<String>,
    granted: ActionGrants,
    args: Vec<Value>,
) -> Result<(), Failure> {
    let source = warren_core::readfile::read_text_bounded(path, warren_config::MAX_SOURCE_BYTES)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(Failure::bad_input)?;
    if let Some(host) = host.filter(|h| h != DEFAULT_HOST) {
        return Err(Failure::bad_input(anyhow!(
            "host '{host}' not found: a script runs on {DEFAULT_HOST}"
        )));
    }
    let mut program = LuaProgram::new(path.display().to_string(), source).with_modules(&MODULES);
    program.grants = std::sync::Arc::new(granted);
    // A syntax error is bad input (exit 2), found before anything runs.
    warren_lua::check_source(&program).map_err(|message| {
        Failure::bad_input(
            anyhow!("{message}").context(format!("cannot compile {}", path.display())),
        )
    })?;
    run_single(program.into_program(SCRIPT_ENTRY), args)
}

/// The quotas of host entry `h`: its `limits:` over the defaults.
pub(crate) fn host_limits(h: &HostEntry) -> HostLimits {
    let d = HostLimits::default();
    let l = &h.limits;
    let nanos = |ns: i64| std::time::Duration::from_nanos(u64::try_from(ns).unwrap_or(0));
    let count = |v: Option<u64>| v.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    HostLimits {
        max_processes: count(l.max_processes).unwrap_or(d.max_processes),
        memory_per_process: l.memory_per_process.unwrap_or(d.memory_per_process),
        memory_total: l.memory_total.unwrap_or(d.memory_total),
        cpu_slice: l.cpu_slice.map_or(d.cpu_slice, nanos),
        cpu_budget: l.cpu_budget.map(nanos),
        max_message_bytes: count(l.max_message_bytes).unwrap_or(d.max_message_bytes),
        mailbox_limit: l
            .mailbox_limit
            .map_or(d.mailbox_limit, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        allow_hosts: h.allow_hosts.clone(),
        max_open_handles: count(l.max_open_handles).unwrap_or(d.max_open_handles),
        max_ops_per_process: count(l.max_ops_per_process).unwrap_or(d.max_ops_per_process),
        max_ops_per_host: count(l.max_ops_per_host).unwrap_or(d.max_ops_per_host),
        max_handles_per_host: count(l.max_handles_per_host).unwrap_or(d.max_handles_per_host),
    }
}

/// The runtime host of host entry `name`.
fn host_spec(name: &str, h: &HostEntry) -> HostSpec {
    let workers = h.workers.unwrap_or_else(warren_config::default_workers);
    let spec = HostSpec::new(name, workers)
        .with_limits(host_limits(h))
        .with_grants(h.grants.clone());
    if h.terminal { spec.terminal() } else { spec }
}

/// A runtime with the app's hosts (or the default host), its entries for
/// the `registry` module, and every Lua entry with its imports.
pub(crate) fn build_runtime(app: &App) -> Result<Runtime, Failure> {
    let mut builder = RuntimeBuilder::new()
        .frontend(lua_frontend())
        .frontend(wasm_frontend())
        .entries(app.catalog())
        .extension(crate::databases::open(app)?)
        .extension(crate::databases::volumes(app)?)
        .extension(crate::databases::variables(app)?)
        .extension(std::sync::Arc::new(functions(app)));
    let mut any_host = false;
    for (name, h) in app.hosts() {
        builder = builder.host(host_spec(name, h));
        any_host = true;
    }
    if !any_host {
        builder =
            builder.host(HostSpec::new(DEFAULT_HOST, warren_config::default_workers()).terminal());
    }
    let mut libraries = crate::imports::Libraries::default();
    for (id, lua) in app.lua_entries() {
        let mut program = LuaProgram::new(lua.path.display().to_string(), lua.source.as_str());
        program.method.clone_from(&lua.method);
        program.modules.clone_from(&lua.modules);
        program.imports = libraries.resolve(app, &lua.imports);
        program.grants = std::sync::Arc::new(lua.grants.clone());
        builder = builder.program(program.into_program(id));
    }
    if app.wasm_entries().next().is_some() {
        let engine = wasm_engine(Some(app))?;
        for (id, wasm) in app.wasm_entries() {
            let program = engine.load_granted(&wasm.path, grants(wasm)).map_err(|e| {
                Failure::bad_input(anyhow::Error::from(e).context(format!("entry '{id}'")))
            })?;
            builder = builder.program(program.into_program(id));
        }
    }
    builder
        .start()
        .context("cannot start the runtime")
        .map_err(Failure::failed)
}

/// The app's `function.lua` entries and their pools.
fn functions(app: &App) -> warren_core::Functions {
    let mut functions = warren_core::Functions::new();
    for (id, lua) in app.lua_entries() {
        if let Some(pool) = lua.pool {
            functions.insert(id, pool);
        }
    }
    functions
}

fn run_app(app: &App, entry: &str, host: Option<String>, args: Vec<Value>) -> Result<(), Failure> {
    if !app
        .lua_entries()
        .any(|(id, e)| id == entry && e.pool.is_none())
        && !app.wasm_entries().any(|(id, _)| id == entry)
    {
        let msg = anyhow!(
            "entry '{}' not found, or not a process entry, in {}",
            warren_core::error::quoted_id(entry),
            app.root.display()
        );
        return Err(Failure::bad_input(msg));
    }
    let host = main_host(app, host)?;
    let runtime = build_runtime(app)?;
    let req = SpawnRequest::new(entry, host, args);
    if app.services().next().is_some() {
        return finish(crate::exec::run(app, &runtime, req));
    }
    run_main(&runtime, req, true)
}

/// The host `-x` runs its entry on: `--host`, else the only terminal host,
/// else the only host (or the default host of an app that declares none).
fn main_host(app: &App, host: Option<String>) -> Result<String, Failure> {
    if let Some(host) = host {
        // Checked before anything starts: the services of an application
        // ran first, and a `--host` naming nothing failed only after them.
        let hosts: Vec<&str> = app.hosts().map(|(id, _)| id).collect();
        let known = if hosts.is_empty() {
            host == DEFAULT_HOST
        } else {
            hosts.contains(&host.as_str())
        };
        if !known {
            let known = if hosts.is_empty() {
                DEFAULT_HOST.to_owned()
            } else {
                hosts.join(", ")
            };
            return Err(Failure::bad_input(anyhow!(
                "--host: host '{}' not found in {} (its hosts: {known})",
                warren_core::error::quoted_id(&host),
                app.root.display()
            )));
        }
        return Ok(host);
    }
    let terminals: Vec<&str> = app.terminal_hosts().map(|(id, _)| id).collect();
    let (hosts, kind) = if terminals.is_empty() {
        (app.hosts().map(|(id, _)| id).collect(), "hosts")
    } else {
        (terminals, "terminal hosts")
    };
    match hosts.as_slice() {
        [only] => Ok((*only).to_owned()),
        [] => Ok(DEFAULT_HOST.to_owned()),
        _ => Err(Failure::bad_input(anyhow!(
            "several {kind} ({}): choose one with --host",
            hosts.join(", ")
        ))),
    }
}

/// Runs the main process to its end. With `propagate` (an application's
/// `-x` entry), an integer it returns is the exit status, as in Wippy.
fn run_main(runtime: &Runtime, req: SpawnRequest, propagate: bool) -> Result<(), Failure> {
    let entry = req.entry.clone();
    let (pid, exit) = runtime
        .spawn_watched(req)
        .with_context(|| format!("cannot start entry '{entry}'"))
        .map_err(Failure::bad_input)?;
    let result = exit
        .recv()
        .map_err(|_| Failure::failed(anyhow!("the runtime stopped before {pid} exited")))?;
    match result {
        Ok(value) if propagate => finish(returned(&value)),
        Ok(_) => finish(Ok(())),
        Err(err) => finish(Err(Failure::failed(
            anyhow!("{}", err.message).context(failed_message(pid, &entry, err.kind.name())),
        ))),
    }
}

/// The outcome of an `-x` entry that ended normally with `value`: an
/// integer from 1 to 255 is the program's exit status (Wippy's `run
/// --exec` propagates it); anything else is success. (A script's return
/// value is not a status: scripts return results.)
pub(crate) fn returned(value: &Value) -> Result<(), Failure> {
    match value {
        Value::Int(n) => match u8::try_from(*n) {
            Ok(0) | Err(_) => Ok(()),
            Ok(status) => Err(Failure::returned(status)),
        },
        _ => Ok(()),
    }
}

pub(crate) fn failed_message(pid: Pid, entry: &str, kind: &str) -> String {
    format!("process {pid} (entry {entry}) failed [{kind}]")
}

/// Other processes may still run when the main process ends; the program
/// ends with it, as an escript does, without waiting for them.
pub(crate) fn finish(result: Result<(), Failure>) -> Result<(), Failure> {
    crate::logging::flush();
    let status = match &result {
        Ok(()) => 0,
        Err(failure) => {
            if !failure.quiet {
                crate::report(&failure.error);
            }
            i32::from(failure.status)
        }
    };
    std::process::exit(status)
}
