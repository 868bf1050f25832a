//! `warren check`: load the configuration and compile every Lua source,
//! printing each problem with its place.

use std::path::Path;

use anyhow::anyhow;
use warren_config::App;
use warren_lua::{LuaProgram, MODULES, check_source};

use crate::Failure;

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
    let mut failed = 0;
    for (id, entry) in app.lua_entries() {
        let program = LuaProgram::new(entry.path.display().to_string(), entry.source.as_str());
        if let Err(message) = check_source(&program) {
            eprintln!("error: entry '{id}': {message}");
            failed += 1;
        }
    }
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
