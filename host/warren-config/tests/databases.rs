//! Database entries (modules.md §1 "sql", "Entries"): `db.sql.sqlite` and
//! `db.sql.postgres` with their defaults, paths, `dsn`, `_env` and
//! `${env:...}` resolution, errors naming entry, key and value, the
//! unsupported kinds, password redaction and `db.get` grants.

mod common;

use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use warren_config::{App, ConfigError, DatabaseEntry, DatabaseKind, PoolConfig, SqliteFile};
use warren_core::Value;

const MODULES: [&str; 2] = ["sql", "json"];

/// Variables this test sets: unique names, so no other test or CI variable
/// interferes.
const HOST_VAR: &str = "WARREN_CONFIG_DBTEST_HOST_5B1E";
const PORT_VAR: &str = "WARREN_CONFIG_DBTEST_PORT_5B1E";
const USER_VAR: &str = "WARREN_CONFIG_DBTEST_USER_5B1E";
const PASSWORD_VAR: &str = "WARREN_CONFIG_DBTEST_PASSWORD_5B1E";
const EMPTY_VAR: &str = "WARREN_CONFIG_DBTEST_EMPTY_5B1E";
const UNSET_VAR: &str = "WARREN_CONFIG_DBTEST_UNSET_5B1E";
const ENV_PASSWORD: &str = "env-pw-Kq93zz";

/// A literal password that must never be printed.
const SECRET: &str = "s3cr3t-Zq81";

fn set_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let vars = [
            (HOST_VAR, "db.internal"),
            (PORT_VAR, "6543"),
            (USER_VAR, "app_user"),
            (PASSWORD_VAR, ENV_PASSWORD),
            (EMPTY_VAR, ""),
        ];
        for (name, value) in vars {
            // SAFETY: the names are unique to this test binary, set once
            // before any load reads them, and only std (which locks the
            // environment) reads the environment here.
            unsafe { std::env::set_var(name, value) };
        }
    });
}

/// Writes `files` into a fresh folder named `name` and loads it.
fn load_files(name: &str, files: &[(&str, &str)]) -> (PathBuf, Result<App, Vec<ConfigError>>) {
    set_env();
    common::write_and_load("warren-config-databases", name, files, &MODULES)
}

use common::{assert_mentions, index};

/// An app of one `_index.yaml` (namespace `app`) with `entries` and `main.lua`.
fn load(name: &str, entries: &str) -> (PathBuf, Result<App, Vec<ConfigError>>) {
    let index = index("app", entries);
    load_files(
        name,
        &[
            ("_index.yaml", &index),
            ("main.lua", "return { main = function() end }"),
        ],
    )
}

fn load_database(name: &str, entries: &str, id: &str) -> (PathBuf, DatabaseEntry) {
    let (dir, result) = load(name, entries);
    let app = result.expect("loads");
    let db = app
        .databases()
        .find(|(found, _)| *found == id)
        .map(|(_, db)| db.clone())
        .expect("the database entry");
    (dir, db)
}

/// The single problem of a failed load, as printed.
fn problem(name: &str, entries: &str) -> String {
    let (_, result) = load(name, entries);
    let problems = result.expect_err("the load fails");
    assert_eq!(problems.len(), 1, "{problems:?}");
    let text = problems[0].to_string();
    assert!(!text.contains(SECRET), "the password leaked: {text}");
    assert!(!text.contains(ENV_PASSWORD), "the password leaked: {text}");
    text
}

/// A PostgreSQL entry `app:pg` with the five fields and `extra` lines.
fn pg(extra: &str) -> String {
    format!(
        "  - name: pg\n    kind: db.sql.postgres\n    host: localhost\n    port: 5432\n    \
         database: app\n    username: app\n    password: {SECRET}\n{extra}"
    )
}

/// `pg` without the line of `key`, then `extra` lines.
fn pg_without(key: &str, extra: &str) -> String {
    let base: String = pg("")
        .lines()
        .filter(|line| !line.trim_start().starts_with(&format!("{key}:")))
        .map(|line| format!("{line}\n"))
        .collect();
    base + extra
}

#[test]
fn sqlite_defaults() {
    let (dir, db) = load_database(
        "sqlite-defaults",
        "  - { name: main, kind: db.sql.sqlite, file: data/app.db }\n",
        "app:main",
    );
    assert_eq!(db.id, "app:main");
    assert_eq!(
        db.kind,
        DatabaseKind::Sqlite {
            file: SqliteFile::Path(dir.join("data/app.db"))
        }
    );
    assert_eq!(db.kind.name(), "db.sql.sqlite");
    assert_eq!(db.pool, PoolConfig::default());
    assert_eq!(db.pool.max_open, 16);
    assert_eq!(db.pool.max_idle, 0);
    assert_eq!(db.pool.max_lifetime, Duration::from_secs(3600));
    assert_eq!(db.pool.acquire_timeout, Duration::from_secs(30));
    assert_eq!(db.query_timeout, None);
}

#[test]
fn postgres_defaults() {
    let (_, db) = load_database("pg-defaults", &pg(""), "app:pg");
    let DatabaseKind::Postgres {
        host,
        port,
        database,
        username,
        password,
        dsn,
        options,
    } = &db.kind
    else {
        panic!("not postgres: {db:?}");
    };
    assert_eq!(
        (host.as_str(), *port, database.as_str(), username.as_str()),
        ("localhost", 5432, "app", "app")
    );
    assert_eq!(password, SECRET);
    assert_eq!(dsn, &None);
    assert!(options.is_empty());
    assert_eq!(db.pool, PoolConfig::default());
    assert_eq!(db.query_timeout, None);
    assert_eq!(db.kind.name(), "db.sql.postgres");
}

#[test]
fn postgres_every_field() {
    let extra = "    pool: { max_open: 32, max_idle: 4, max_lifetime: 30m, acquire_timeout: 5s }\n    \
                 query_timeout: 2s\n    \
                 options: { sslmode: verify-full, application_name: warren, connect_timeout: 10 }\n    \
                 lifecycle: { auto_start: true }\n    meta: { comment: main database }\n";
    let (_, result) = load("pg-every", &pg(extra));
    let app = result.expect("loads");
    let (_, db) = app.databases().next().expect("one database");
    assert_eq!(
        db.pool,
        PoolConfig {
            max_open: 32,
            max_idle: 4,
            max_lifetime: Duration::from_secs(1800),
            acquire_timeout: Duration::from_secs(5),
        }
    );
    assert_eq!(db.query_timeout, Some(Duration::from_secs(2)));
    let DatabaseKind::Postgres { options, .. } = &db.kind else {
        panic!("not postgres");
    };
    let pairs = [
        ("sslmode", "verify-full"),
        ("application_name", "warren"),
        ("connect_timeout", "10"),
    ];
    let expected: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(options, &expected);
    let entry = &app.entries["app:pg"];
    assert_eq!(entry.kind.name(), "db.sql.postgres");
    assert_eq!(
        entry.meta.get("comment"),
        Some(&Value::str("main database"))
    );
    // The registry shows the entry, its password redacted.
    assert_eq!(entry.data.get("host"), Some(&Value::str("localhost")));
    assert_eq!(
        entry.data.get("password"),
        Some(&Value::str(warren_config::REDACTED))
    );
    let catalog = app.catalog();
    assert_eq!(catalog.len(), 1);
    assert_eq!(catalog[0].kind, "db.sql.postgres");
}

#[test]
fn pool_max_open_zero_is_sixteen_and_max_idle_is_clamped() {
    let (_, db) = load_database(
        "pool-zero",
        &pg("    pool: { max_open: 0, max_idle: 50, max_lifetime: \"0\" }\n"),
        "app:pg",
    );
    assert_eq!(db.pool.max_open, 16);
    assert_eq!(db.pool.max_idle, 16);
    assert_eq!(db.pool.max_lifetime, Duration::MAX);
    let (_, db) = load_database(
        "pool-sqlite",
        "  - name: main\n    kind: db.sql.sqlite\n    file: app.db\n    \
         pool: { max_lifetime: 10m }\n    query_timeout: 1500ms\n    options: { ignored: yes }\n",
        "app:main",
    );
    assert_eq!(db.pool.max_lifetime, Duration::from_secs(600));
    assert_eq!(db.query_timeout, Some(Duration::from_millis(1500)));
}

#[test]
fn sqlite_paths_resolve_against_the_application_folder() {
    let entries = "  - { name: main, kind: db.sql.sqlite, file: data/app.db }\n  \
                   - { name: abs, kind: db.sql.sqlite, file: /var/lib/warren/abs.db }\n  \
                   - { name: mem, kind: db.sql.sqlite, file: \":memory:\" }\n";
    let (dir, result) = load_files(
        "sqlite-paths",
        &[
            (
                "_index.yaml",
                &index("app", "  - { name: x, kind: registry.entry }\n"),
            ),
            ("sub/deeper/_index.yaml", &index("app.db", entries)),
        ],
    );
    let app = result.expect("loads");
    let file = |id: &str| {
        let (_, db) = app
            .databases()
            .find(|(found, _)| *found == id)
            .expect("entry");
        match &db.kind {
            DatabaseKind::Sqlite { file } => file.clone(),
            other => panic!("not sqlite: {other:?}"),
        }
    };
    assert_eq!(
        file("app.db:main"),
        SqliteFile::Path(dir.join("data/app.db"))
    );
    assert_eq!(
        file("app.db:abs"),
        SqliteFile::Path(PathBuf::from("/var/lib/warren/abs.db"))
    );
    assert_eq!(file("app.db:mem"), SqliteFile::Memory);
    assert_eq!(app.databases().count(), 3);
}

#[test]
fn dsn_replaces_the_five_fields() {
    let url = format!("postgresql://app:{SECRET}@db.internal:5432/app?sslmode=require");
    let entries = format!(
        "  - name: pg\n    kind: db.sql.postgres\n    dsn: \"{url}\"\n    \
         options: {{ application_name: warren }}\n"
    );
    let (_, result) = load("dsn", &entries);
    let app = result.expect("loads");
    let (_, db) = app.databases().next().expect("one database");
    let DatabaseKind::Postgres {
        host, port, dsn, ..
    } = &db.kind
    else {
        panic!("not postgres");
    };
    assert_eq!(dsn.as_deref(), Some(url.as_str()));
    assert_eq!((host.as_str(), *port), ("", 0));
    let debug = format!("{app:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert_eq!(
        app.entries["app:pg"].data.get("dsn"),
        Some(&Value::str(warren_config::REDACTED))
    );
    let (_, db) = load_database(
        "dsn-postgres",
        "  - { name: pg, kind: db.sql.postgres, dsn: \"postgres://localhost/app\" }\n",
        "app:pg",
    );
    assert!(matches!(
        db.kind,
        DatabaseKind::Postgres { dsn: Some(_), .. }
    ));
}

#[test]
fn dsn_errors() {
    let text = problem(
        "dsn-and-host",
        "  - { name: pg, kind: db.sql.postgres, dsn: \"postgres://h/d\", host: h }\n",
    );
    assert_mentions(
        &text,
        &[
            "entry 'app:pg'",
            "key 'host'",
            "cannot be combined with dsn",
        ],
    );
    let text = problem(
        "dsn-and-env",
        &format!(
            "  - {{ name: pg, kind: db.sql.postgres, dsn: \"postgres://h/d\", password_env: {PASSWORD_VAR} }}\n"
        ),
    );
    assert_mentions(&text, &["key 'password_env'", "cannot be combined"]);
    let text = problem(
        "dsn-scheme",
        &format!("  - {{ name: pg, kind: db.sql.postgres, dsn: \"mysql://u:{SECRET}@h/d\" }}\n"),
    );
    assert_mentions(
        &text,
        &[
            "entry 'app:pg'",
            "key 'dsn'",
            "postgres:// or postgresql://",
        ],
    );
}

#[test]
fn env_references_and_placeholders_resolve() {
    let entries = format!(
        "  - name: pg\n    kind: db.sql.postgres\n    host_env: {HOST_VAR}\n    \
         port: \"${{env:{PORT_VAR}}}\"\n    database: \"db_${{env:{USER_VAR}}}\"\n    \
         username: \"${{env:{UNSET_VAR}|fallback}}$${{literal}}\"\n    \
         password_env: {PASSWORD_VAR}\n    \
         options: {{ application_name: \"${{env:{EMPTY_VAR}|warren}}\" }}\n    \
         query_timeout: \"${{env:{UNSET_VAR}|3s}}\"\n"
    );
    let (_, db) = load_database("env", &entries, "app:pg");
    let DatabaseKind::Postgres {
        host,
        port,
        database,
        username,
        password,
        options,
        ..
    } = &db.kind
    else {
        panic!("not postgres");
    };
    assert_eq!(host, "db.internal");
    assert_eq!(*port, 6543);
    assert_eq!(database, "db_app_user");
    assert_eq!(username, "fallback${literal}");
    assert_eq!(password, ENV_PASSWORD);
    assert_eq!(
        options,
        &vec![("application_name".to_owned(), "warren".to_owned())]
    );
    assert_eq!(db.query_timeout, Some(Duration::from_secs(3)));
    let debug = format!("{db:?}");
    assert!(!debug.contains(ENV_PASSWORD), "{debug}");
    assert!(debug.contains(warren_config::REDACTED), "{debug}");
    let (dir, db) = load_database(
        "env-sqlite",
        &format!("  - {{ name: main, kind: db.sql.sqlite, file: \"${{env:{USER_VAR}}}.db\" }}\n"),
        "app:main",
    );
    assert_eq!(
        db.kind,
        DatabaseKind::Sqlite {
            file: SqliteFile::Path(dir.join("app_user.db"))
        }
    );
}

#[test]
fn an_unset_env_reference_names_entry_key_and_variable() {
    let text = problem(
        "env-unset",
        &pg_without("password", &format!("    password_env: {UNSET_VAR}\n")),
    );
    assert_mentions(
        &text,
        &["entry 'app:pg'", "key 'password_env'", UNSET_VAR, "not set"],
    );
    // An empty value counts as unset.
    let text = problem(
        "env-empty",
        &pg_without("host", &format!("    host_env: {EMPTY_VAR}\n")),
    );
    assert_mentions(&text, &["key 'host_env'", EMPTY_VAR]);
    let text = problem("env-both", &pg(&format!("    host_env: {HOST_VAR}\n")));
    assert_mentions(
        &text,
        &["key 'host_env'", "give host or host_env, not both"],
    );
    let text = problem(
        "env-bad-name",
        &pg_without("host", "    host_env: \"not a name\"\n"),
    );
    assert_mentions(&text, &["key 'host_env'", "not a variable name"]);
}

#[test]
fn an_unresolvable_placeholder_names_entry_and_key() {
    let text = problem(
        "placeholder-unset",
        &pg_without(
            "database",
            &format!("    database: \"${{env:{UNSET_VAR}}}\"\n"),
        ),
    );
    assert_mentions(
        &text,
        &["entry 'app:pg'", "key 'database'", UNSET_VAR, "no default"],
    );
    let text = problem(
        "placeholder-password",
        &pg_without(
            "password",
            &format!("    password: \"{SECRET}${{env:{UNSET_VAR}}}\"\n"),
        ),
    );
    assert_mentions(&text, &["key 'password'", UNSET_VAR]);
    let text = problem(
        "placeholder-malformed",
        &pg_without("host", "    host: \"${oops}\"\n"),
    );
    assert_mentions(&text, &["key 'host'", "\"${oops}\"", "$${"]);
    let text = problem(
        "placeholder-duration",
        &pg(&format!("    query_timeout: \"${{env:{USER_VAR}}}\"\n")),
    );
    assert_mentions(&text, &["key 'query_timeout'", USER_VAR, "duration"]);
    assert!(
        !text.contains("app_user"),
        "a resolved value leaked: {text}"
    );
}

#[test]
fn field_errors_name_entry_key_and_value() {
    let cases: [(&str, String, &[&str]); 14] = [
        (
            "missing-host",
            pg_without("host", ""),
            &["key 'host'", "missing", "host_env", "dsn"],
        ),
        (
            "empty-host",
            pg_without("host", "    host: \"\"\n"),
            &["key 'host'", "\"\" is empty"],
        ),
        (
            "bad-port",
            pg_without("port", "    port: 70000\n"),
            &["key 'port'", "70000", "not a port"],
        ),
        (
            "text-port",
            pg_without("port", "    port: fivefour\n"),
            &["key 'port'", "\"fivefour\""],
        ),
        (
            "port-env-bad",
            pg_without("port", &format!("    port_env: {USER_VAR}\n")),
            &["key 'port'", USER_VAR, "not a port"],
        ),
        (
            "list-user",
            pg_without("username", "    username: [a]\n"),
            &["key 'username'", "a list"],
        ),
        (
            "sslmode",
            pg("    options: { sslmode: requir }\n"),
            &["key 'options.sslmode'", "\"requir\"", "verify-full"],
        ),
        (
            "connect-timeout",
            pg("    options: { connect_timeout: soon }\n"),
            &["key 'options.connect_timeout'", "\"soon\""],
        ),
        (
            "options-list",
            pg("    options: [a]\n"),
            &["key 'options'", "a list"],
        ),
        (
            "options-bool",
            pg("    options: { keepalives: true }\n"),
            &["key 'options.keepalives'", "boolean true"],
        ),
        (
            "options-password",
            pg(&format!("    options: {{ password: {SECRET} }}\n")),
            &["key 'options.password'", "password_env"],
        ),
        (
            "unknown-key",
            pg("    hostname: x\n"),
            &["key 'hostname'", "unknown key"],
        ),
        (
            "max-open",
            pg("    pool: { max_open: -1 }\n"),
            &["key 'pool.max_open'", "-1"],
        ),
        (
            "max-lifetime",
            pg("    pool: { max_lifetime: soon }\n"),
            &["key 'pool.max_lifetime'", "\"soon\""],
        ),
    ];
    for (name, entries, needles) in cases {
        let text = problem(name, &entries);
        assert_mentions(&text, &["entry 'app:pg'"]);
        assert_mentions(&text, needles);
    }
}

#[test]
fn duration_errors_name_their_key() {
    let text = problem("acquire-zero", &pg("    pool: { acquire_timeout: 0s }\n"));
    assert_mentions(
        &text,
        &[
            "entry 'app:pg'",
            "key 'pool.acquire_timeout'",
            "\"0s\"",
            "more than 0",
        ],
    );
    let text = problem("query-zero", &pg("    query_timeout: \"0\"\n"));
    assert_mentions(&text, &["key 'query_timeout'", "more than 0"]);
    let text = problem("query-bare", &pg("    query_timeout: 5\n"));
    assert_mentions(&text, &["key 'query_timeout'", "with a unit"]);
}

#[test]
fn sqlite_errors_name_entry_key_and_value() {
    let text = problem(
        "sqlite-missing",
        "  - { name: main, kind: db.sql.sqlite }\n",
    );
    assert_mentions(&text, &["entry 'app:main'", "key 'file'"]);
    let text = problem(
        "sqlite-empty",
        "  - { name: main, kind: db.sql.sqlite, file: \"\" }\n",
    );
    assert_mentions(&text, &["entry 'app:main'", "key 'file'", "\"\" is empty"]);
    let text = problem(
        "sqlite-host",
        "  - { name: main, kind: db.sql.sqlite, file: a.db, host: x }\n",
    );
    assert_mentions(&text, &["entry 'app:main'", "key 'host'", "unknown key"]);
}

#[test]
fn other_engines_are_unsupported() {
    for kind in ["db.sql.mysql", "db.sql.mssql", "db.sql.oracle"] {
        let name = kind.replace('.', "-");
        let text = problem(
            &name,
            &format!("  - {{ name: other, kind: {kind}, host: h, password: {SECRET} }}\n"),
        );
        assert_mentions(
            &text,
            &[
                "entry 'app:other'",
                "key 'kind'",
                &format!("'{kind}' is not supported"),
                "SQLite",
                "PostgreSQL",
            ],
        );
    }
}

#[test]
fn passwords_are_never_shown() {
    // In Debug output of the loaded application.
    let (_, result) = load("redact-debug", &pg(""));
    let app = result.expect("loads");
    let debug = format!("{app:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains("password: \"<redacted>\""), "{debug}");
    // In errors about the password itself or the entry around it.
    let text = problem(
        "redact-type",
        &pg_without("password", &format!("    password: [{SECRET}]\n")),
    );
    assert_mentions(
        &text,
        &["key 'password'", "expected a string, found a list"],
    );
    let text = problem(
        "redact-bool",
        &pg_without("password", "    password: true\n"),
    );
    assert_mentions(&text, &["key 'password'", "found a boolean"]);
    assert!(!text.contains("true"), "{text}");
    let text = problem("redact-other", &pg("    port_env: X\n"));
    assert_mentions(&text, &["key 'port_env'"]);
    let (_, result) = load(
        "redact-many",
        &format!(
            "{}  - {{ name: bad, kind: db.sql.mysql, password: {SECRET} }}\n",
            pg("    options: { sslmode: nope }\n")
        ),
    );
    for problem in result.expect_err("fails") {
        let text = format!("{problem} {problem:?}");
        assert!(!text.contains(SECRET), "{text}");
    }
}

#[test]
fn db_get_grants_must_name_a_database() {
    let process = |grant: &str| {
        format!(
            "  - name: main\n    kind: process.lua\n    source: file://main.lua\n    \
             modules: [sql]\n    grants: {{ db.get: [\"{grant}\"] }}\n  \
             - {{ name: db, kind: db.sql.sqlite, file: \":memory:\" }}\n  \
             - {{ name: reg, kind: registry.entry }}\n"
        )
    };
    let (_, result) = load("grant-ok", &process("app:db"));
    result.expect("a grant naming a database loads");
    let text = problem("grant-registry", &process("app:reg"));
    assert_mentions(
        &text,
        &[
            "entry 'app:main'",
            "key 'grants.db.get'",
            "'app:reg' is a registry.entry entry",
            "not a db.sql.sqlite or db.sql.postgres entry",
        ],
    );
    let text = problem("grant-missing", &process("app:nowhere"));
    assert_mentions(&text, &["key 'grants.db.get'", "no entry 'app:nowhere'"]);
}
