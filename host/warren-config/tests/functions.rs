//! `function.lua` entries (modules.md §5): the fields of `process.lua`
//! plus `pool`, its types and defaults, errors naming entry and key, and
//! `funcs.call` grants checked against function entries.

mod common;

use common::assert_mentions;

use std::path::PathBuf;

use warren_config::{App, ConfigError, EntryKind, LuaEntry};
use warren_core::{Pool, PoolKind};

const MODULES: [&str; 2] = ["funcs", "sql"];

fn load(name: &str, entries: &str) -> (PathBuf, Result<App, Vec<ConfigError>>) {
    let index = common::index("app", entries);
    common::write_and_load(
        "warren-config-functions",
        name,
        &[
            ("_index.yaml", &index),
            (
                "main.lua",
                "return { main = function() end, handle = function() end }",
            ),
        ],
        &MODULES,
    )
}

/// The single problem of a failed load, as printed.
fn problem(name: &str, entries: &str) -> String {
    let (dir, result) = load(name, entries);
    common::only_problem(&dir, result)
}

fn function(name: &str, pool: &str) -> String {
    format!(
        "  - name: {name}\n    kind: function.lua\n    source: file://main.lua\n    \
         method: handle\n    modules: [sql]\n{pool}"
    )
}

fn lua<'a>(app: &'a App, id: &str) -> &'a LuaEntry {
    match &app.entries[id].kind {
        EntryKind::Lua(lua) => lua,
        other => panic!("{id} is {other:?}"),
    }
}

#[test]
fn function_entries_load_with_their_pools() {
    let entries = [
        function("plain", ""),
        function(
            "fixed",
            "    pool: { type: static, workers: 4, buffer: 64 }\n",
        ),
        function("implied", "    pool: { workers: 2 }\n"),
        function("inline", "    pool: { type: inline }\n"),
        "  - { name: main, kind: process.lua, source: file://main.lua }\n".to_owned(),
    ]
    .concat();
    let (_, result) = load("pools", &entries);
    let app = result.expect("loads");
    assert_eq!(lua(&app, "app:plain").pool, Some(Pool::default()));
    let fixed = lua(&app, "app:fixed").pool.expect("a pool");
    assert_eq!(
        (fixed.kind, fixed.size, fixed.buffer),
        (PoolKind::Static, 4, 64)
    );
    let implied = lua(&app, "app:implied").pool.expect("a pool");
    assert_eq!(
        (implied.kind, implied.size, implied.buffer),
        (PoolKind::Static, 2, 128)
    );
    assert_eq!(
        lua(&app, "app:inline").pool.map(|p| p.kind),
        Some(PoolKind::Inline)
    );
    assert_eq!(lua(&app, "app:main").pool, None);
    assert_eq!(app.entries["app:plain"].kind.name(), "function.lua");
    assert_eq!(app.entries["app:main"].kind.name(), "process.lua");
    assert_eq!(lua(&app, "app:plain").method, "handle");
}

#[test]
fn bad_pools_name_entry_and_key() {
    let text = problem("type", &function("f", "    pool: { type: eager }\n"));
    assert_mentions(&text, &["entry 'app:f'", "key 'pool.type'", "eager"]);
    let text = problem("zero", &function("f", "    pool: { max_size: 0 }\n"));
    assert_mentions(&text, &["key 'pool.max_size'", "0"]);
    let text = problem("key", &function("f", "    pool: { threads: 2 }\n"));
    assert_mentions(&text, &["entry 'app:f'", "key 'pool'", "threads"]);
    let process = "  - name: p\n    kind: process.lua\n    source: file://main.lua\n    \
                   pool: { workers: 2 }\n";
    let text = problem("process-pool", process);
    assert_mentions(&text, &["entry 'app:p'", "key 'pool'", "function.lua"]);
}

#[test]
fn funcs_call_grants_name_function_entries() {
    let caller = |grants: &str| {
        format!(
            "{}  - name: main\n    kind: process.lua\n    source: file://main.lua\n    \
             modules: [funcs]\n    grants:\n{grants}",
            function("f", "")
        )
    };
    let (_, ok) = load(
        "grant-ok",
        &caller("      funcs.call: [app:f, \"other:*\"]\n"),
    );
    ok.expect("loads");
    let text = problem("grant-missing", &caller("      funcs.call: [app:nope]\n"));
    assert_mentions(&text, &["key 'grants.funcs.call'", "no entry 'app:nope'"]);
    let text = problem("grant-kind", &caller("      funcs.call: [app:main]\n"));
    assert_mentions(
        &text,
        &[
            "key 'grants.funcs.call'",
            "'app:main' is a process.lua entry",
            "function.lua",
        ],
    );
}

#[test]
fn a_service_cannot_run_a_function_entry() {
    let entries = format!(
        "{}  - name: h\n    kind: process.host\n  \
         - name: svc\n    kind: process.service\n    process: app:f\n    host: app:h\n",
        function("f", "")
    );
    let text = problem("service", &entries);
    assert_mentions(
        &text,
        &["entry 'app:svc'", "'app:f' is not a process entry"],
    );
}
