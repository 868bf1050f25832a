//! `App::load` on Wippy-style application folders: libraries and imports,
//! terminal hosts, `meta` and the registry catalog, `lifecycle.startup`,
//! and errors that name their key.

use std::path::{Path, PathBuf};

use warren_config::{App, ConfigError, EntryKind, Startup};
use warren_core::Value;

const MODULES: [&str; 4] = ["json", "time", "io", "registry"];

/// Writes `files` into a fresh folder named `name`.
fn folder(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("warren-config")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    for (path, text) in files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, text).expect("write");
    }
    dir
}

/// An app of one `_index.yaml` (namespace `app`) with `entries` and a few Lua files.
fn load(name: &str, entries: &str) -> Result<App, Vec<ConfigError>> {
    let index = format!("version: \"1.0\"\nnamespace: app\nentries:\n{entries}");
    let dir = folder(
        name,
        &[
            ("_index.yaml", &index),
            ("main.lua", "return { main = function() end }"),
            ("lib.lua", "return {}"),
        ],
    );
    App::load(&dir, &MODULES)
}

/// The single problem of a failed load, as printed.
fn problem(result: Result<App, Vec<ConfigError>>) -> String {
    let problems = result.expect_err("the load fails");
    assert_eq!(problems.len(), 1, "{problems:?}");
    problems[0].to_string()
}

fn assert_mentions(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "missing {needle:?} in: {text}");
    }
}

fn map(pairs: &[(&str, Value)]) -> Value {
    Value::Map(
        pairs
            .iter()
            .map(|(k, v)| (Value::str(*k), v.clone()))
            .collect(),
    )
}

const LIBS: &str = r#"
  - name: main
    kind: process.lua
    source: file://main.lua
    modules: [json]
    imports: { util: app:util }
  - name: util
    kind: library.lua
    source: file://lib.lua
    modules: [time]
    imports: { base: app:base }
  - name: base
    kind: library.lua
    source: file://lib.lua
"#;

#[test]
fn libraries_and_imports_load() {
    let app = load("libs", LIBS).expect("loads");
    let EntryKind::Library(util) = &app.entries["app:util"].kind else {
        panic!("app:util is a library");
    };
    assert_eq!(util.modules, ["time"]);
    assert_eq!(util.imports["base"], "app:base");
    assert_eq!(util.source, "return {}");
    assert!(util.path.ends_with("lib.lua"));
    let (_, main) = app.lua_entries().next().expect("a Lua entry");
    assert_eq!(main.imports["util"], "app:util");
    assert_eq!(app.libraries().count(), 2);
}

#[test]
fn a_library_has_no_method() {
    let text = problem(load(
        "libmethod",
        "  - name: util\n    kind: library.lua\n    source: file://lib.lua\n    method: main\n",
    ));
    assert_mentions(&text, &["entry 'app:util'", "key 'method'", "no method"]);
}

#[test]
fn a_library_rejects_unknown_keys() {
    let text = problem(load(
        "libkey",
        "  - name: util\n    kind: library.lua\n    source: file://lib.lua\n    limits: {}\n",
    ));
    assert_mentions(&text, &["entry 'app:util'", "key 'limits'", "unknown key"]);
}

#[test]
fn an_import_must_name_a_library_of_the_app() {
    let entries = r#"
  - name: main
    kind: process.lua
    source: file://main.lua
    imports: { other: app:main, gone: app:nope }
"#;
    let problems = load("badimport", entries).expect_err("fails");
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 2, "{text:?}");
    assert_mentions(
        &text[0],
        &["key 'imports.gone'", "'app:nope'", "not an entry"],
    );
    assert_mentions(
        &text[1],
        &[
            "key 'imports.other'",
            "'app:main' is a process.lua entry",
            "library.lua",
        ],
    );
}

#[test]
fn import_aliases_must_be_plain_names() {
    for (alias, needle) in [
        ("\"a/b\"", "must not contain '/'"),
        ("\"\"", "must not be empty"),
        ("json", "also listed in modules"),
    ] {
        let entries = format!(
            "  - name: main\n    kind: process.lua\n    source: file://main.lua\n    modules: [json]\n    imports: {{ {alias}: app:lib }}\n  - name: lib\n    kind: library.lua\n    source: file://lib.lua\n"
        );
        let text = problem(load("alias", &entries));
        assert_mentions(&text, &["entry 'app:main'", "key 'imports.", needle]);
    }
}

#[test]
fn import_cycles_between_libraries_are_reported() {
    let entries = r#"
  - name: a
    kind: library.lua
    source: file://lib.lua
    imports: { b: app:b }
  - name: b
    kind: library.lua
    source: file://lib.lua
    imports: { a: app:a }
"#;
    let text = problem(load("cycle", entries));
    assert_mentions(
        &text,
        &["key 'imports'", "import cycle: app:a -> app:b -> app:a"],
    );
    let own = "  - name: a\n    kind: library.lua\n    source: file://lib.lua\n    imports: { me: app:a }\n";
    let text = problem(load("selfcycle", own));
    assert_mentions(&text, &["import cycle: app:a -> app:a"]);
}

#[test]
fn a_terminal_host_is_a_host_with_the_flag() {
    let entries = r#"
  - name: terminal
    kind: terminal.host
    hide_logs: true
    lifecycle: { auto_start: true }
  - name: processes
    kind: process.host
  - name: main
    kind: process.lua
    source: file://main.lua
  - name: svc
    kind: process.service
    process: app:main
    host: app:terminal
"#;
    let app = load("terminal", entries).expect("loads");
    let hosts: Vec<(&str, bool)> = app.hosts().map(|(id, h)| (id, h.terminal)).collect();
    assert_eq!(hosts, [("app:processes", false), ("app:terminal", true)]);
    let (id, terminal) = app.terminal_hosts().next().expect("a terminal host");
    assert_eq!(id, "app:terminal");
    assert!(terminal.hide_logs);
    assert_eq!(app.entries["app:terminal"].kind.name(), "terminal.host");
}

#[test]
fn a_terminal_host_rejects_unknown_keys() {
    let text = problem(load(
        "terminalkey",
        "  - name: terminal\n    kind: terminal.host\n    host: { workers: 4 }\n",
    ));
    assert_mentions(
        &text,
        &["entry 'app:terminal'", "key 'host'", "unknown key"],
    );
}

#[test]
fn meta_and_data_are_kept_and_make_the_catalog() {
    let entries = r#"
  - name: tool
    kind: library.lua
    source: file://lib.lua
    meta: { type: tool, tags: [a, b] }
  - name: main
    kind: process.lua
    source: file://main.lua
    modules: [json]
"#;
    let app = load("meta", entries).expect("loads");
    let tool = &app.entries["app:tool"];
    let tags = Value::Array(vec![Value::str("a"), Value::str("b")]);
    assert_eq!(
        tool.meta,
        map(&[("type", Value::str("tool")), ("tags", tags)])
    );
    assert_eq!(tool.data, map(&[("source", Value::str("file://lib.lua"))]));
    assert_eq!(app.entries["app:main"].meta, Value::Map(Vec::new()));
    let catalog = app.catalog();
    let ids: Vec<(&str, &str)> = catalog
        .iter()
        .map(|e| (e.id.as_str(), e.kind.as_str()))
        .collect();
    assert_eq!(
        ids,
        [("app:main", "process.lua"), ("app:tool", "library.lua")]
    );
    let modules = Value::Array(vec![Value::str("json")]);
    assert_eq!(
        catalog[0].data,
        map(&[
            ("source", Value::str("file://main.lua")),
            ("modules", modules)
        ])
    );
    assert_eq!(catalog[1].meta, tool.meta);
}

#[test]
fn meta_must_be_a_map() {
    let text = problem(load(
        "metalist",
        "  - name: main\n    kind: process.lua\n    source: file://main.lua\n    meta: [a]\n",
    ));
    assert_mentions(&text, &["entry 'app:main'", "key 'meta'", "expected a map"]);
}

const SERVICE: &str = r#"
  - name: host
    kind: process.host
  - name: main
    kind: process.lua
    source: file://main.lua
  - name: svc
    kind: process.service
    process: app:main
    host: app:host
"#;

fn service_with(name: &str, lifecycle: &str) -> Result<App, Vec<ConfigError>> {
    load(name, &format!("{SERVICE}    lifecycle: {lifecycle}\n"))
}

#[test]
fn lifecycle_startup_is_required_by_default_or_optional() {
    let app = load("startup", SERVICE).expect("loads");
    assert_eq!(
        app.services().next().expect("svc").1.startup,
        Startup::Required
    );
    let app = service_with("optional", "{ startup: optional }").expect("loads");
    assert_eq!(
        app.services().next().expect("svc").1.startup,
        Startup::Optional
    );
    let text = problem(service_with("badstartup", "{ startup: sometimes }"));
    assert_mentions(
        &text,
        &[
            "entry 'app:svc'",
            "key 'lifecycle.startup'",
            "'sometimes'",
            "required or optional",
        ],
    );
}

#[test]
fn depends_on_is_merged_into_requires() {
    let extra =
        "  - name: db\n    kind: process.service\n    process: app:main\n    host: app:host\n";
    let entries = format!("{SERVICE}    lifecycle: {{ depends_on: [app:db] }}\n{extra}");
    let app = load("dependson", &entries).expect("loads");
    let svc = app
        .services()
        .find(|(id, _)| *id == "app:svc")
        .expect("svc")
        .1;
    assert_eq!(svc.requires, ["app:db"]);
}

#[test]
fn an_integer_duration_is_a_key_error_showing_the_value() {
    for (lifecycle, key, value) in [
        ("{ start_timeout: 5 }", "lifecycle.start_timeout", "5"),
        ("{ stop_timeout: 10 }", "lifecycle.stop_timeout", "10"),
        (
            "{ restart: { period: 3 } }",
            "lifecycle.restart.period",
            "3",
        ),
    ] {
        let text = problem(service_with("intduration", lifecycle));
        assert_mentions(
            &text,
            &[
                "entry 'app:svc'",
                &format!("key '{key}'"),
                &format!("{value} is not a duration"),
                &format!("\"{value}s\""),
            ],
        );
    }
    let text = problem(load(
        "intslice",
        "  - name: host\n    kind: process.host\n    limits: { cpu_slice: 2 }\n",
    ));
    assert_mentions(
        &text,
        &["key 'limits.cpu_slice'", "2 is not a duration", "\"2ms\""],
    );
}

#[test]
fn a_wrongly_typed_value_names_its_key() {
    let text = problem(service_with("badbool", "{ auto_start: sometimes }"));
    assert_mentions(
        &text,
        &[
            "entry 'app:svc'",
            "key 'lifecycle.auto_start'",
            "\"sometimes\"",
        ],
    );
    let text = problem(load(
        "badmodule",
        "  - name: main\n    kind: process.lua\n    source: file://main.lua\n    modules: [json, 12]\n",
    ));
    assert_mentions(&text, &["key 'modules[1]'", "12"]);
}

#[test]
fn a_duplicate_entry_names_the_key_and_both_files() {
    let entry = "  - name: main\n    kind: process.lua\n    source: file://main.lua\n";
    let index = format!("version: \"1.0\"\nnamespace: app\nentries:\n{entry}");
    let dir = folder(
        "duplicate",
        &[
            ("_index.yaml", &index),
            ("main.lua", "return {}"),
            ("sub/_index.yaml", &index),
            ("sub/main.lua", "return {}"),
        ],
    );
    let text = problem(App::load(&dir, &MODULES));
    let first = dir.join("_index.yaml").display().to_string();
    let second = dir.join("sub/_index.yaml").display().to_string();
    assert_mentions(
        &text,
        &[
            "key 'name'",
            "duplicate entry id 'app:main'",
            &first,
            &second,
        ],
    );
    assert!(text.starts_with(&second), "{text}");
}

#[test]
fn a_registry_entry_keeps_meta_and_its_data_and_refuses_other_keys() {
    let entries = r#"
  - name: tool.weather
    kind: registry.entry
    meta: { type: tool, title: Weather }
    data: { units: metric }
"#;
    let app = load("registry-entry", entries).expect("loads");
    let e = &app.entries["app:tool.weather"];
    assert_eq!(e.kind.name(), "registry.entry");
    assert_eq!(e.data, map(&[("units", Value::str("metric"))]));
    assert_eq!(
        e.meta,
        map(&[
            ("type", Value::str("tool")),
            ("title", Value::str("Weather"))
        ])
    );
    let bad = r#"
  - name: tool.weather
    kind: registry.entry
    source: file://x.lua
"#;
    let problems = load("registry-entry-bad", bad).expect_err("refused");
    let text = problems.iter().map(ToString::to_string).collect::<String>();
    assert!(text.contains("key 'source'"), "{text}");
}

#[test]
fn max_handles_per_host_is_read_and_zero_is_refused() {
    let app = load(
        "handlesperhost",
        "  - name: host\n    kind: process.host\n    limits: { max_handles_per_host: 40 }\n",
    )
    .expect("the load succeeds");
    let (id, host) = app.hosts().next().expect("a host");
    assert_eq!(id, "app:host");
    assert_eq!(host.limits.max_handles_per_host, Some(40));
    let text = problem(load(
        "handlesperhostzero",
        "  - name: host\n    kind: process.host\n    limits: { max_handles_per_host: 0 }\n",
    ));
    assert_mentions(
        &text,
        &["key 'limits.max_handles_per_host'", "must be at least 1"],
    );
}
