//! `warren check <script.lua>` and `warren check <component.wasm>`: the
//! checks `warren run` would make of the same file before it runs, without
//! running it. A script is compiled (with every safe module allowed, as
//! `run` allows them) and its type diagnostics printed; a component is
//! loaded and matched against the WIT process world.
//!
//! Guarantees: nothing of the file runs; the source is read bounded by
//! [`warren_config::MAX_SOURCE_BYTES`]; each problem names the file.

use std::path::Path;

use anyhow::{Context, anyhow};
use warren_lua::{LuaProgram, MODULES, check_source};

use crate::Failure;
use crate::check::TypeOptions;

/// The entry a script's diagnostics name (the one `run` gives it).
const SCRIPT_ENTRY: &str = "script:main";

/// Checks the script or component at `path` (see the module docs);
/// `None` when `path` is neither (an application folder, or nothing).
pub(crate) fn check(path: &Path, opts: &TypeOptions) -> Option<Result<(), Failure>> {
    if path.is_dir() {
        return None;
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("lua") => Some(script(path, opts)),
        Some("wasm") => Some(component(path)),
        _ => None,
    }
}

fn script(path: &Path, opts: &TypeOptions) -> Result<(), Failure> {
    let source = warren_core::readfile::read_text_bounded(path, warren_config::MAX_SOURCE_BYTES)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(Failure::bad_input)?;
    let program =
        LuaProgram::new(path.display().to_string(), source.clone()).with_modules(&MODULES);
    check_source(&program).map_err(|message| {
        Failure::bad_input(
            anyhow!("{message}").context(format!("cannot compile {}", path.display())),
        )
    })?;
    let found = crate::types::collect_texts([(SCRIPT_ENTRY, path, source.as_str())]);
    if opts.json {
        println!("{}", crate::types::json(&found, 1));
    } else {
        crate::types::print(&found, opts.format);
    }
    let type_errors = crate::types::errors(&found);
    if type_errors > 0 && opts.fatal {
        return Err(Failure::failed(anyhow!(
            "{type_errors} type error(s) in {}",
            path.display()
        )));
    }
    println!("ok: {}", path.display());
    Ok(())
}

fn component(path: &Path) -> Result<(), Failure> {
    crate::run::wasm_engine(None)?
        .load(path)
        .map_err(|e| Failure::bad_input(anyhow::Error::from(e)))?;
    println!("ok: {}", path.display());
    Ok(())
}
