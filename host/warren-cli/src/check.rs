//! `warren check`: load the configuration and compile every Lua source,
//! printing each problem with its place.

use std::path::Path;

use anyhow::anyhow;
use warren_config::App;
use warren_lua::{LuaProgram, MODULES, check_source};

use crate::Failure;

/// Compiles every Lua source of `app`: one line per problem, naming the
/// entry, file and line.
pub(crate) fn lua_problems(app: &App) -> Vec<String> {
    app.lua_entries()
        .filter_map(|(id, entry)| {
            let program = LuaProgram::new(entry.path.display().to_string(), entry.source.as_str());
            check_source(&program)
                .err()
                .map(|message| format!("entry '{id}': {message}"))
        })
        .collect()
}

/// Fails `warren run` with every Lua compile error of `app`, before any
/// process starts (a syntax error is bad input, not a crash to restart).
pub(crate) fn compile_all(app: &App, path: &Path) -> Result<(), Failure> {
    let problems = lua_problems(app);
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

pub(crate) fn check(path: &Path) -> Result<(), Failure> {
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
    let lua = lua_problems(&app);
    for problem in &lua {
        eprintln!("error: {problem}");
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
