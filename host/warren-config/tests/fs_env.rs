//! `fs.directory`, `env.storage.*` and `env.variable` entries (modules.md
//! §3 and §4, "Entries"): every field and default, errors naming entry, key
//! and value, the shared-public-name warning, `fs.get`/`env.*` grant
//! checks, and `${env:...}`/`_env` placeholders resolved through declared
//! variables on static and os storages.

mod common;

use std::path::PathBuf;

use warren_config::{
    App, ConfigError, DatabaseKind, EnvStorageEntry, EnvStorageKind, SqliteFile, VolumeEntry,
};

const MODULES: [&str; 3] = ["fs", "env", "sql"];

/// An OS variable only this test binary sets.
const OS_VAR: &str = "WARREN_CONFIG_FSENV_OS_7Q2C";
/// An OS variable this test sets and a declared variable shadows.
const SHADOWED_VAR: &str = "WARREN_CONFIG_FSENV_SHADOWED_7Q2C";

fn set_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (name, value) in [(OS_VAR, "from-os.db"), (SHADOWED_VAR, "os-value")] {
            // SAFETY: the names are unique to this test binary, set once
            // before any load reads them; only std (which locks the
            // environment) reads it here.
            unsafe { std::env::set_var(name, value) };
        }
    });
}

/// Writes `files` into a fresh folder named `name` and loads it.
fn load_files(name: &str, files: &[(&str, &str)]) -> (PathBuf, Result<App, Vec<ConfigError>>) {
    set_env();
    common::write_and_load("warren-config-fs-env", name, files, &MODULES)
}

use common::{assert_mentions, index};

/// An app of one `_index.yaml` (namespace `app`), `main.lua` and the
/// folder `data/`.
fn load(name: &str, entries: &str) -> (PathBuf, Result<App, Vec<ConfigError>>) {
    let index = index("app", entries);
    load_files(
        name,
        &[
            ("_index.yaml", &index),
            ("main.lua", "return { main = function() end }"),
            ("data/.keep", ""),
        ],
    )
}

fn loaded(name: &str, entries: &str) -> (PathBuf, App) {
    let (dir, result) = load(name, entries);
    (dir, result.expect("loads"))
}

/// The single problem of a failed load, as printed; it names the file.
fn problem(name: &str, entries: &str) -> String {
    let (dir, result) = load(name, entries);
    common::only_problem(&dir, result)
}

fn volume<'a>(app: &'a App, id: &str) -> &'a VolumeEntry {
    app.volumes().find(|v| v.id == id).expect("volume")
}

fn storage<'a>(app: &'a App, id: &str) -> &'a EnvStorageEntry {
    app.env_storages().find(|s| s.id == id).expect("storage")
}

fn sqlite_path(app: &App) -> PathBuf {
    let (_, db) = app.databases().next().expect("a database");
    match &db.kind {
        DatabaseKind::Sqlite {
            file: SqliteFile::Path(path),
        } => path.clone(),
        other => panic!("not an SQLite file: {other:?}"),
    }
}

#[test]
fn fs_directory_fields_and_defaults() {
    let entries = r#"
  - { name: plain, kind: fs.directory, directory: data }
  - name: all
    kind: fs.directory
    directory: var/uploads
    auto_init: true
    mode: "0555"
    base: module
  - { name: owner_only, kind: fs.directory, directory: data, mode: 0600 }
  - { name: project, kind: fs.directory, directory: ., base: project }
"#;
    let (dir, app) = loaded("fs-fields", entries);
    let plain = volume(&app, "app:plain");
    assert_eq!(plain.directory, dir.join("data"));
    assert!(!plain.auto_init);
    assert_eq!(plain.mode, 0o755);
    let all = volume(&app, "app:all");
    assert_eq!(all.directory, dir.join("var/uploads"));
    assert!(all.auto_init);
    assert_eq!(all.mode, 0o555);
    assert!(!all.directory.exists(), "loading creates nothing");
    assert_eq!(volume(&app, "app:owner_only").mode, 0o700, "execute added");
    let cwd = std::env::current_dir().expect("cwd");
    assert_eq!(volume(&app, "app:project").directory, cwd.join("."));
    let entry = &app.entries["app:plain"];
    assert_eq!(entry.kind.name(), "fs.directory");
}

#[test]
fn fs_directory_errors_name_entry_key_and_value() {
    let cases: [(&str, &str, &[&str]); 7] = [
        (
            "missing-key",
            "  - { name: v, kind: fs.directory }\n",
            &["entry 'app:v'", "directory"],
        ),
        (
            "bad-octal",
            "  - { name: v, kind: fs.directory, directory: data, mode: \"0855\" }\n",
            &["entry 'app:v'", "key 'mode'", "\"0855\"", "octal"],
        ),
        (
            "owner-bits",
            "  - { name: v, kind: fs.directory, directory: data, mode: \"0044\" }\n",
            &["key 'mode'", "0044", "owner"],
        ),
        (
            "special-bits",
            "  - { name: v, kind: fs.directory, directory: data, mode: \"4755\" }\n",
            &["key 'mode'", "4755", "permission bits"],
        ),
        (
            "bad-base",
            "  - { name: v, kind: fs.directory, directory: data, base: home }\n",
            &["key 'base'", "'home'", "module or project"],
        ),
        (
            "absent",
            "  - { name: v, kind: fs.directory, directory: nope }\n",
            &["key 'directory'", "nope", "auto_init"],
        ),
        (
            "a-file",
            "  - { name: v, kind: fs.directory, directory: main.lua, auto_init: true }\n",
            &["key 'directory'", "main.lua", "not a directory"],
        ),
    ];
    for (name, entries, needles) in cases {
        assert_mentions(&problem(name, entries), needles);
    }
    let text = problem(
        "unknown-key",
        "  - { name: v, kind: fs.directory, directory: data, writable: true }\n",
    );
    assert_mentions(&text, &["key 'writable'", "unknown"]);
}

#[test]
fn a_nul_character_in_any_path_names_entry_and_key() {
    // It passed the check, and the run failed with "invalid argument".
    let cases = [
        (
            "  - { name: v, kind: fs.directory, directory: \"a\\u0000b\", auto_init: true }\n",
            "entry 'app:v': key 'directory': \"a\\0b\" contains a NUL character",
        ),
        (
            "  - { name: db, kind: db.sql.sqlite, file: \"data/x\\0.db\" }\n",
            "entry 'app:db': key 'file': \"data/x\\0.db\" contains a NUL character",
        ),
        (
            "  - { name: f, kind: env.storage.file, file_path: \"a\\0.env\" }\n",
            "entry 'app:f': key 'file_path': \"a\\0.env\" contains a NUL character",
        ),
        (
            "  - { name: m, kind: process.lua, source: \"file://main\\0.lua\" }\n",
            "entry 'app:m': key 'source': \"main\\0.lua\" contains a NUL character",
        ),
    ];
    for (entries, needle) in cases {
        assert_mentions(&problem("nul-path", entries), &[needle]);
    }
}

const STORAGES: &str = r#"
  - { name: os, kind: env.storage.os }
  - name: defaults
    kind: env.storage.static
    values: { PORT: 8080, APP_MODE: production, DEBUG: false }
  - { name: runtime, kind: env.storage.memory }
  - name: file
    kind: env.storage.file
    file_path: config/app.env
    auto_create: true
    file_mode: 0600
    dir_mode: "0700"
  - { name: file_defaults, kind: env.storage.file, file_path: other.env }
  - name: chain
    kind: env.storage.router
    storages: [app:runtime, app:file, app:os]
"#;

#[test]
fn env_storages_every_field_and_default() {
    let (dir, app) = loaded("env-storages", STORAGES);
    assert_eq!(storage(&app, "app:os").kind, EnvStorageKind::Os);
    let pairs = |list: &[(&str, &str)]| {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        storage(&app, "app:defaults").kind,
        EnvStorageKind::Static(pairs(&[
            ("PORT", "8080"),
            ("APP_MODE", "production"),
            ("DEBUG", "false")
        ]))
    );
    assert_eq!(storage(&app, "app:runtime").kind, EnvStorageKind::Memory);
    assert_eq!(
        storage(&app, "app:file").kind,
        EnvStorageKind::File {
            path: dir.join("config/app.env"),
            auto_create: true,
            file_mode: 0o600,
            dir_mode: 0o700,
        }
    );
    assert_eq!(
        storage(&app, "app:file_defaults").kind,
        EnvStorageKind::File {
            path: dir.join("other.env"),
            auto_create: false,
            file_mode: 0o644,
            dir_mode: 0o755,
        }
    );
    assert!(!dir.join("config").exists(), "loading creates nothing");
    let chain = ["app:runtime", "app:file", "app:os"].map(String::from);
    assert_eq!(
        storage(&app, "app:chain").kind,
        EnvStorageKind::Router(chain.to_vec())
    );
    let kinds: Vec<&str> = ["app:os", "app:file", "app:chain"]
        .iter()
        .map(|id| app.entries[*id].kind.name())
        .collect();
    assert_eq!(
        kinds,
        ["env.storage.os", "env.storage.file", "env.storage.router"]
    );
}

#[test]
fn env_variables_fields_defaults_and_load_order() {
    let entries = format!(
        "{STORAGES}{}",
        r#"
  - name: zeta
    kind: env.variable
    variable: DB_PASSWORD
    storage: app:os
    default: ""
    readonly: true
  - { name: alpha, kind: env.variable, storage: app:chain, default: 8080 }
"#
    );
    let (_, app) = loaded("env-variables", &entries);
    let vars: Vec<_> = app.env_variables().collect();
    assert_eq!(vars.len(), 2);
    assert_eq!(vars[0].id, "app:zeta", "load order, not id order");
    assert_eq!(vars[0].variable.as_deref(), Some("DB_PASSWORD"));
    assert_eq!(vars[0].storage, "app:os");
    assert_eq!(vars[0].default.as_deref(), Some(""));
    assert!(vars[0].readonly);
    assert_eq!(vars[1].variable, None);
    assert_eq!(vars[1].default.as_deref(), Some("8080"));
    assert!(!vars[1].readonly);
    assert!(app.warnings().is_empty());
    assert_eq!(app.entries["app:alpha"].kind.name(), "env.variable");
    // What the registry shows of them hides the secrets: a variable's
    // default and a static storage's values (any process could read them
    // with `registry.get`, where `env.get` needs a grant).
    let redacted = Some(warren_core::Value::str(warren_config::REDACTED));
    assert_eq!(
        app.entries["app:alpha"].data.get("default"),
        redacted.as_ref()
    );
    assert_eq!(
        app.entries["app:alpha"].data.get("storage"),
        Some(&warren_core::Value::str("app:chain"))
    );
    assert_eq!(
        app.entries["app:defaults"].data.get("values"),
        redacted.as_ref()
    );
}

#[test]
fn env_errors_name_entry_key_and_value() {
    let var = |storage: &str| {
        format!("  - {{ name: v, kind: env.variable, variable: V, storage: {storage} }}\n")
    };
    let lua = "  - { name: main, kind: process.lua, source: file://main.lua }\n";
    let mem = "  - { name: mem, kind: env.storage.memory }\n";
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "var-missing-storage",
            var("app:nope"),
            vec!["entry 'app:v'", "key 'storage'", "app:nope", "no entry"],
        ),
        (
            "var-wrong-kind",
            format!("{lua}{}", var("app:main")),
            vec!["key 'storage'", "'app:main' is a process.lua entry"],
        ),
        (
            "bad-public-name",
            format!(
                "{mem}  - {{ name: v, kind: env.variable, variable: DB-URL, storage: app:mem }}\n"
            ),
            vec!["entry 'app:v'", "key 'variable'", "\"DB-URL\""],
        ),
        (
            "router-missing",
            "  - { name: r, kind: env.storage.router, storages: [app:gone] }\n".into(),
            vec!["entry 'app:r'", "key 'storages'", "app:gone"],
        ),
        (
            "router-wrong-kind",
            format!("{lua}  - {{ name: r, kind: env.storage.router, storages: [app:main] }}\n"),
            vec!["key 'storages'", "process.lua"],
        ),
        (
            "router-cycle",
            "  - { name: a, kind: env.storage.router, storages: [app:b] }\n  \
             - { name: b, kind: env.storage.router, storages: [app:a] }\n"
                .into(),
            vec!["key 'storages'", "cycle", "app:a -> app:b -> app:a"],
        ),
        (
            "router-empty",
            "  - { name: r, kind: env.storage.router, storages: [] }\n".into(),
            vec!["entry 'app:r'", "key 'storages'", "missing"],
        ),
        (
            "file-path-missing",
            "  - { name: f, kind: env.storage.file }\n".into(),
            vec!["entry 'app:f'", "key 'file_path'"],
        ),
        (
            "file-mode-owner",
            "  - { name: f, kind: env.storage.file, file_path: a.env, file_mode: \"0400\" }\n"
                .into(),
            vec!["key 'file_mode'", "0400", "read and write"],
        ),
        (
            "dir-mode-octal",
            "  - { name: f, kind: env.storage.file, file_path: a.env, dir_mode: \"rwx\" }\n".into(),
            vec!["key 'dir_mode'", "\"rwx\""],
        ),
        (
            "static-not-scalar",
            "  - { name: s, kind: env.storage.static, values: { A: [1] } }\n".into(),
            vec!["entry 'app:s'", "key 'values.A'", "a list"],
        ),
        (
            "key-of-other-kind",
            "  - { name: m, kind: env.storage.memory, file_path: a.env }\n".into(),
            vec!["entry 'app:m'", "key 'file_path'", "env.storage.memory"],
        ),
        (
            "unknown-storage-kind",
            "  - { name: m, kind: env.storage.vault }\n".into(),
            vec!["key 'kind'", "env.storage.vault"],
        ),
        (
            "variable-without-storage",
            "  - { name: v, kind: env.variable, variable: V }\n".into(),
            vec!["entry 'app:v'", "storage"],
        ),
    ];
    for (name, entries, needles) in cases {
        assert_mentions(&problem(name, &entries), &needles);
    }
}

#[test]
fn shared_public_name_is_a_warning_first_wins() {
    let files = [
        (
            "a/_index.yaml",
            index(
                "first",
                "  - { name: s, kind: env.storage.memory }\n  \
                 - { name: v, kind: env.variable, variable: SHARED, storage: first:s }\n",
            ),
        ),
        (
            "b/_index.yaml",
            index(
                "second",
                "  - { name: v, kind: env.variable, variable: SHARED, storage: first:s }\n",
            ),
        ),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
    let (dir, result) = load_files("shared-name", &files);
    let app = result.expect("a warning does not stop the load");
    assert_eq!(app.warnings().len(), 1, "{:?}", app.warnings());
    let warning = &app.warnings()[0];
    let file = dir.join("b/_index.yaml").display().to_string();
    assert_mentions(
        warning,
        &[
            &file,
            "entry 'second:v'",
            "key 'variable'",
            "'SHARED'",
            "'first:v'",
        ],
    );
    let ids: Vec<&str> = app.env_variables().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["first:v", "second:v"]);
}

#[test]
fn fs_and_env_grants_are_checked() {
    let defs = "  - { name: data, kind: fs.directory, directory: data }\n  \
                - { name: s, kind: env.storage.memory }\n  \
                - { name: v, kind: env.variable, variable: V, storage: app:s }\n";
    let process = |grants: &str| {
        format!(
            "{defs}  - name: main\n    kind: process.lua\n    source: file://main.lua\n    \
             modules: [fs, env]\n    grants:\n{grants}"
        )
    };
    let ok = process("      fs.get: [app:data, \"app:*\"]\n      env.get: [V, app:v]\n");
    loaded("grants-ok", &ok);
    let text = problem("fs-missing", &process("      fs.get: [app:nope]\n"));
    assert_mentions(
        &text,
        &[
            "entry 'app:main'",
            "key 'grants.fs.get'",
            "no entry 'app:nope'",
            "fs.directory",
        ],
    );
    let text = problem("fs-wrong-kind", &process("      fs.get: [app:v]\n"));
    assert_mentions(
        &text,
        &[
            "key 'grants.fs.get'",
            "'app:v' is a env.variable entry",
            "fs.directory",
        ],
    );
    let text = problem("env-wrong-kind", &process("      env.set: [app:data]\n"));
    assert_mentions(
        &text,
        &["key 'grants.env.set'", "fs.directory", "env.variable"],
    );
}

#[test]
fn placeholders_resolve_through_a_static_storage() {
    let entries = r#"
  - name: db
    kind: db.sql.sqlite
    file: "${env:DB_FILE}/${env:app:db_name}-${env:UNDECLARED_7Q2C|dflt}.db"
  - name: defaults
    kind: env.storage.static
    values: { DB_FILE: data, app:db_name: main }
  - { name: db_file, kind: env.variable, variable: DB_FILE, storage: app:defaults }
  - { name: db_name, kind: env.variable, storage: app:defaults }
"#;
    let (dir, app) = loaded("placeholder-static", entries);
    assert_eq!(sqlite_path(&app), dir.join("data/main-dflt.db"));
}

#[test]
fn a_volume_directory_resolves_placeholders() {
    let entries = r#"
  - name: files
    kind: fs.directory
    directory: "${env:DATA_DIR}"
  - name: defaults
    kind: env.storage.static
    values: { DATA_DIR: data }
  - { name: data_dir, kind: env.variable, variable: DATA_DIR, storage: app:defaults }
"#;
    let (dir, app) = loaded("placeholder-volume", entries);
    assert_eq!(volume(&app, "app:files").directory, dir.join("data"));
    let text = problem(
        "placeholder-volume-unset",
        "  - { name: files, kind: fs.directory, directory: \"${env:UNSET_7Q2C_DIR}\" }\n",
    );
    assert_mentions(
        &text,
        &["entry 'app:files'", "key 'directory'", "UNSET_7Q2C_DIR"],
    );
}

#[test]
fn placeholders_resolve_through_an_os_storage_declared_in_another_file() {
    let db = format!("  - {{ name: db, kind: db.sql.sqlite, file: \"${{env:{OS_VAR}}}\" }}\n");
    let vars = format!(
        "  - {{ name: os, kind: env.storage.os }}\n  \
         - {{ name: v, kind: env.variable, variable: {OS_VAR}, storage: zz:os }}\n"
    );
    // The variable's file loads after the database's (paths in order).
    let files = [
        ("a/_index.yaml", index("aa", &db)),
        ("z/_index.yaml", index("zz", &vars)),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
    let (dir, result) = load_files("placeholder-os", &files);
    assert_eq!(sqlite_path(&result.expect("loads")), dir.join("from-os.db"));
}

#[test]
fn a_declared_variable_shadows_the_os_environment() {
    let entries = format!(
        "  - name: db\n    kind: db.sql.postgres\n    host_env: {SHADOWED_VAR}\n    \
         database: d\n    username: u\n    password: p\n    port: 5432\n  \
         - {{ name: s, kind: env.storage.static, values: {{ {SHADOWED_VAR}: declared-host }} }}\n  \
         - {{ name: v, kind: env.variable, variable: {SHADOWED_VAR}, storage: app:s }}\n"
    );
    let (_, app) = loaded("placeholder-shadow", &entries);
    let (_, db) = app.databases().next().expect("db");
    let DatabaseKind::Postgres { host, .. } = &db.kind else {
        panic!("postgres");
    };
    assert_eq!(host, "declared-host");
}

#[test]
fn a_declared_variable_without_value_is_an_error_not_an_os_read() {
    let entries = format!(
        "  - {{ name: db, kind: db.sql.sqlite, file: \"${{env:{SHADOWED_VAR}}}\" }}\n  \
         - {{ name: m, kind: env.storage.memory }}\n  \
         - {{ name: v, kind: env.variable, variable: {SHADOWED_VAR}, storage: app:m }}\n"
    );
    let text = problem("placeholder-unset", &entries);
    assert_mentions(
        &text,
        &["entry 'app:db'", "key 'file'", SHADOWED_VAR, "not set"],
    );
    assert!(!text.contains("os-value"), "{text}");
}
