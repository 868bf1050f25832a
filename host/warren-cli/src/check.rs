//! `warren check`: load the configuration and compile every Lua source
//! (processes and libraries), printing each problem with its place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use warren_config::App;
use warren_lua::{LuaProgram, MODULES, check_source};

use crate::Failure;

/// What the checks need of a Lua process or library entry.
struct LuaSource<'a> {
    id: &'a str,
    path: &'a PathBuf,
    source: &'a str,
    modules: &'a [String],
    imports: &'a BTreeMap<String, String>,
}

/// Every Lua source of `app`: process entries, then libraries.
fn lua_sources(app: &App) -> Vec<LuaSource<'_>> {
    let processes = app.lua_entries().map(|(id, e)| LuaSource {
        id,
        path: &e.path,
        source: &e.source,
        modules: &e.modules,
        imports: &e.imports,
    });
    let libraries = app.libraries().map(|(id, e)| LuaSource {
        id,
        path: &e.path,
        source: &e.source,
        modules: &e.modules,
        imports: &e.imports,
    });
    processes.chain(libraries).collect()
}

/// Every Lua source of `app` (processes and libraries): id, file, text.
pub(crate) fn lua_texts(app: &App) -> Vec<(&str, &Path, &str)> {
    lua_sources(app)
        .into_iter()
        .map(|e| (e.id, e.path.as_path(), e.source))
        .collect()
}

/// The modules a Lua source `require`s by a literal name (`require("x")`,
/// `require 'x'`, `require "x"`), with the line of each.
fn required_modules(source: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (line_no, line) in source.lines().enumerate() {
        let code = line.split("--").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("require") {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + "require".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == ':') {
                continue; // part of another name, or a method
            }
            let arg = rest.trim_start().trim_start_matches('(').trim_start();
            let Some(quote) = arg.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                continue;
            };
            if let Some(end) = arg[1..].find(quote) {
                found.push((line_no + 1, arg[1..=end].to_owned()));
            }
        }
    }
    found
}

/// `require`s of modules an entry (process or library) does not list
/// (which would fail at run time with `PERMISSION_DENIED`), one line each
/// naming entry, file and line. A `require` of an import alias loads that
/// library and is not reported.
pub(crate) fn unlisted_requires(app: &App) -> Vec<String> {
    let mut out = Vec::new();
    for entry in lua_sources(app) {
        for (line, name) in required_modules(entry.source) {
            let listed = entry.modules.contains(&name) || entry.imports.contains_key(&name);
            if MODULES.contains(&name.as_str()) && !listed {
                out.push(format!(
                    "entry '{}': {}:{line}: require(\"{name}\") but module '{name}' is not in its modules list",
                    entry.id,
                    entry.path.display()
                ));
            }
        }
    }
    out
}

/// Compiles every Lua source of `app`, libraries included: one line per
/// problem, naming the entry, file and line.
pub(crate) fn lua_problems(app: &App) -> Vec<String> {
    lua_sources(app)
        .into_iter()
        .filter_map(|entry| {
            let program = LuaProgram::new(entry.path.display().to_string(), entry.source);
            check_source(&program)
                .err()
                .map(|message| format!("entry '{}': {message}", entry.id))
        })
        .collect()
}

/// Fails `warren run` with every Lua compile error of `app`, before any
/// process starts (a syntax error is bad input, not a crash to restart).
pub(crate) fn compile_all(app: &App, path: &Path) -> Result<(), Failure> {
    let mut problems = lua_problems(app);
    // `lua.type_system` of `.wippy.yaml`: diagnostics printed at load, and
    // with `strict` a type error refuses the entry (as in Wippy).
    if app.type_system.enabled || app.type_system.strict {
        let found = crate::types::collect(app);
        crate::types::print(&found, crate::types::Format::Short);
        if app.type_system.strict && crate::types::errors(&found) > 0 {
            problems.push(format!(
                "{} type error(s) with lua.type_system.strict",
                crate::types::errors(&found)
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Failure::bad_input(
        anyhow!("{}", problems.join("\ncaused by: ")).context(format!(
            "cannot compile the Lua sources of {}",
            path.display()
        )),
    ))
}

/// How `warren check` reports type diagnostics.
pub(crate) struct TypeOptions {
    /// `--types`: a type error fails the check.
    pub fatal: bool,
    /// `--json`: diagnostics as JSON lines on stdout.
    pub json: bool,
    /// `--format`.
    pub format: crate::types::Format,
}

pub(crate) fn check(path: &Path, opts: &TypeOptions) -> Result<(), Failure> {
    if let Some(result) = crate::check_file::check(path, opts) {
        return result;
    }
    let app = App::load(path, &MODULES).map_err(|problems| {
        for problem in &problems {
            eprintln!("error: {problem}");
        }
        Failure::bad_input(anyhow!(
            "{} problem(s) in {}",
            problems.len(),
            path.display()
        ))
    })?;
    for warning in app.warnings() {
        eprintln!("warning: {warning}");
    }
    let mut lua = lua_problems(&app);
    lua.extend(unlisted_requires(&app));
    for problem in &lua {
        eprintln!("error: {problem}");
    }
    // Type diagnostics are printed; they fail the check only with --types
    // or a strict type system (code Wippy runs with its type system off
    // must stay runnable).
    let found = crate::types::collect(&app);
    if opts.json {
        println!("{}", crate::types::json(&found, lua_sources(&app).len()));
    } else {
        crate::types::print(&found, opts.format);
    }
    let type_errors = crate::types::errors(&found);
    if type_errors > 0 && (opts.fatal || app.type_system.strict) {
        return Err(Failure::failed(anyhow!(
            "{type_errors} type error(s) in {}",
            path.display()
        )));
    }
    let mut failed = lua.len();
    if app.wasm_entries().next().is_some() {
        let engine = crate::run::wasm_engine(Some(&app))?;
        for (id, wasm) in app.wasm_entries() {
            if let Err(err) = engine.load_granted(&wasm.path, crate::run::grants(wasm)) {
                eprintln!("error: entry '{id}': {err}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(Failure::bad_input(anyhow!(
            "{failed} problem(s) in {}",
            path.display()
        )));
    }
    println!("ok: {} entries in {}", app.entries.len(), path.display());
    Ok(())
}
