//! What SQL run on an entry's connection may do: no SQL reaches outside the
//! entry's own database, no tenant changes the connection every process of
//! the entry shares, and the engine's memory and the length of one value
//! are bounded.
//!
//! Guarantees, for every connection [`install`] is called on:
//! - an authorizer refuses `ATTACH` (by path, `':memory:'`, `''`, a
//!   parameter), `DETACH`, `VACUUM INTO`, `load_extension()` and setting a
//!   pragma outside [`SETTABLE_PRAGMAS`] or making a temporary object, at
//!   prepare time, with `PERMISSION_DENIED` naming what was refused (see
//!   [`take_refusal`]); plain `VACUUM`, reading any pragma and setting the
//!   harmless ones (`user_version`, `application_id`, `table_info(t)`,
//!   `wal_checkpoint`, `optimize` ...) still work;
//! - per-connection limits ([`MAX_VALUE_BYTES`], [`MAX_SQL_BYTES`],
//!   [`MAX_PATTERN_BYTES`], one attached database, no worker threads),
//!   and `like`, `glob` and `instr` that a statement's bounds interrupt
//!   ([`super::functions`]) and page caps on the temporary
//!   database ([`TEMP_DB_MAX_BYTES`]) and an in-memory entry
//!   ([`MEMORY_DB_MAX_BYTES`]);
//! - once per process, a heap limit for the whole SQLite library
//!   ([`HEAP_HARD_LIMIT`], [`HEAP_SOFT_LIMIT`]) as the backstop, of which
//!   one statement and one host take their shares ([`super::heap`]).
//!
//! How `VACUUM` is told from `VACUUM INTO`: both run an internal `ATTACH` of
//! their scratch database while the statement steps, plain `VACUUM` with the
//! empty file name (a private temporary file), `VACUUM INTO` with its target.
//! A user's own `ATTACH ''` is prepared, never stepped, so an empty-name
//! attach is allowed only while [`Stepping`] is held (which `run.rs` holds
//! around stepping a statement it prepared under the authorizer), and any
//! other attach never.
//!
//! How a temporary object is told, however it is spelt: SQLite reports the
//! schema an object goes to with its create action (`CREATE TEMP ...`, or a
//! plain create naming database `temp`), except for a trigger, whose create
//! action names the schema of its *table*: `CREATE TRIGGER temp.tr ... ON
//! main.t` is reported as a trigger of `main`. Every create also writes a
//! row of its schema's table, which the authorizer sees as an insert into
//! `sqlite_[temp_]master` of the schema it really goes to; for a trigger
//! that insert comes after its create action, so the trigger's name is
//! kept ([`TRIGGER`]) and an insert into the temp schema's table refused
//! with it. (The other creates insert first and are refused by their
//! create action, which names `temp` and the object.)

use std::cell::{Cell, RefCell};
use std::sync::Once;

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::{Connection, ffi};

/// Longest string or blob (and table row) the engine builds, in bytes
/// (`SQLITE_LIMIT_LENGTH`). Prevents one value from taking the machine and
/// one opcode from holding the entry: `SELECT randomblob(999999999)` took
/// 2.9 GB of memory for a process limited to 16 MiB, and two such values in
/// a row 3.9 GB; summing 20 of them held the database file 2.7 s after the
/// process was terminated, because an interrupt is only seen between
/// opcodes. At this bound one value is made in milliseconds.
pub(crate) const MAX_VALUE_BYTES: usize = 16 << 20;

/// Longest SQL text the engine parses, in bytes (`SQLITE_LIMIT_SQL_LENGTH`):
/// the same bound a module call puts on the text it takes; SQL is code, not
/// data, and megabytes of it would only make the parser work for an
/// attacker.
pub const MAX_SQL_BYTES: usize = 1 << 20;

/// Longest `LIKE` or `GLOB` pattern, in bytes
/// (`SQLITE_LIMIT_LIKE_PATTERN_LENGTH`; SQLite's default is 50,000). The
/// matcher ([`super::pattern`]) recurses once per wildcard run, and
/// SQLite advises a small bound where patterns come from untrusted code.
pub(crate) const MAX_PATTERN_BYTES: usize = 1024;

/// Attached databases a connection may hold (`SQLITE_LIMIT_ATTACHED`): the
/// one `VACUUM` attaches for its scratch copy (0 would break `VACUUM`).
/// The authorizer refuses every `ATTACH` of a user; this is the second
/// wall.
const MAX_ATTACHED: i32 = 1;

/// Largest the temporary database (`CREATE TEMP TABLE`, `temp.` objects)
/// may grow, in bytes, through its `max_page_count`. Temp tables live on the
/// shared connection and survive the process that made them: without a
/// bound, one process filled the host's temporary directory, and with
/// `temp_store = MEMORY` (now refused) the heap.
pub(crate) const TEMP_DB_MAX_BYTES: u64 = 64 << 20;

/// Largest an in-memory (`:memory:`) entry's database may grow, in bytes,
/// through its `max_page_count`: its pages are heap memory no process
/// limit counts, and they outlive the process that wrote them (1.5 GB of
/// blobs in one in-memory database were still there for the next process).
pub(crate) const MEMORY_DB_MAX_BYTES: u64 = 128 << 20;

/// Most heap the SQLite library may hold in this process, over every
/// connection of every entry (`sqlite3_hard_heap_limit64`); past it an
/// allocation fails and the statement with it (`RATE_LIMITED`). The
/// backstop for whatever the per-connection bounds miss (caches, sorters,
/// many in-memory entries).
pub(crate) const HEAP_HARD_LIMIT: i64 = 1 << 30;

/// Heap the SQLite library tries to stay under by recycling its page
/// caches first (`sqlite3_soft_heap_limit64`), so that the hard limit is
/// reached only by memory that cannot be recycled.
pub(crate) const HEAP_SOFT_LIMIT: i64 = 256 << 20;

/// Pragmas a statement may give a value or an argument: the ones whose
/// argument names what they read (`table_info(t)`), checks or maintains,
/// and the application's own header values. Every other pragma may only be
/// read: a deny-list missed `default_cache_size`, which a process set to a
/// million pages (282 MB of cache for a 16 MiB process, kept in the file's
/// header for every later connection), and `fullfsync`, `encoding` and more.
pub(crate) const SETTABLE_PRAGMAS: &[&str] = &[
    "user_version",
    "application_id",
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
    "wal_checkpoint",
    "incremental_vacuum",
    "optimize",
];

/// Pragmas a statement may not set (reading them is allowed): examples of
/// what [`SETTABLE_PRAGMAS`] leaves out, each checked by the tests. Each changes
/// the connection every process of the entry shares (and keeps it past the
/// process that set it: `foreign_keys = OFF` reached every later caller),
/// its memory, the process's SQLite heap, or which files it touches.
#[cfg(test)]
pub(crate) const REFUSED_PRAGMAS: &[&str] = &[
    // memory and the heap
    "cache_size",
    "cache_spill",
    "mmap_size",
    "hard_heap_limit",
    "soft_heap_limit",
    "threads",
    "analysis_limit",
    // files and where they are
    "temp_store",
    "temp_store_directory",
    "data_store_directory",
    "journal_mode",
    "locking_mode",
    "synchronous",
    "page_size",
    "max_page_count",
    "journal_size_limit",
    "wal_autocheckpoint",
    "secure_delete",
    "auto_vacuum",
    // the schema and its integrity
    "writable_schema",
    "schema_version",
    "trusted_schema",
    "legacy_alter_table",
    "cell_size_check",
    "ignore_check_constraints",
    // behaviour every caller sees
    "foreign_keys",
    "defer_foreign_keys",
    "recursive_triggers",
    "query_only",
    "read_uncommitted",
    "busy_timeout",
    "case_sensitive_like",
    "count_changes",
    "full_column_names",
    "short_column_names",
    "empty_result_callbacks",
    "reverse_unordered_selects",
    "automatic_index",
    "legacy_file_format",
];

thread_local! {
    /// Set while the engine runs its own SQL on this thread (BEGIN, a
    /// read-only transaction's `query_only`, the rollback of a reset).
    static ENGINE: Cell<bool> = const { Cell::new(false) };
    /// Set while a statement prepared under the authorizer steps on this
    /// thread (see the module docs).
    static STEPPING: Cell<bool> = const { Cell::new(false) };
    /// What the authorizer last refused on this thread.
    static REFUSED: RefCell<Option<String>> = const { RefCell::new(None) };
    /// The trigger the statement being prepared creates, as its create
    /// action named it; forgotten when a statement starts or steps.
    static TRIGGER: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Sets a thread-local flag until dropped.
pub(crate) struct Flag(&'static std::thread::LocalKey<Cell<bool>>, bool);

impl Drop for Flag {
    fn drop(&mut self) {
        self.0.set(self.1);
    }
}

fn flag(key: &'static std::thread::LocalKey<Cell<bool>>) -> Flag {
    let was = key.replace(true);
    Flag(key, was)
}

/// The engine's own SQL runs until the returned guard is dropped.
pub(crate) fn engine() -> Flag {
    flag(&ENGINE)
}

/// A statement steps until the returned guard is dropped; the trigger
/// its preparation named is forgotten (the next statement's create
/// action names its own).
pub(crate) fn stepping() -> Flag {
    TRIGGER.with_borrow_mut(|t| *t = None);
    flag(&STEPPING)
}

/// Forgets an earlier refusal (before a new statement starts).
pub(crate) fn clear_refusal() {
    REFUSED.with_borrow_mut(|r| *r = None);
    TRIGGER.with_borrow_mut(|t| *t = None);
}

/// What the authorizer refused since [`clear_refusal`], as a message.
pub(crate) fn take_refusal() -> Option<String> {
    REFUSED.with_borrow_mut(Option::take)
}

fn refuse(what: String, why: &str) -> Authorization {
    REFUSED.with_borrow_mut(|r| *r = Some(format!("sqlite: {what} is not allowed: {why}")));
    Authorization::Deny
}

const OWN_DATABASE: &str = "SQL reaches only this entry's own database";
const TEMP_SHARED: &str = "temporary objects live on the connection every process of this entry \
     shares, where a temp trigger saw and a temp view or table shadowed other processes' statements";
const SHARED_STATE: &str =
    "it would change the connection, memory or files every process of this entry shares";

/// The authorizer's decision on one action.
fn authorize(ctx: AuthContext<'_>) -> Authorization {
    let engine = ENGINE.get();
    match ctx.action {
        AuthAction::Attach { filename } => {
            // Plain VACUUM's scratch database, attached while it steps.
            if filename.is_empty() && STEPPING.get() {
                return Authorization::Allow;
            }
            refuse(format!("ATTACH of '{filename}'"), OWN_DATABASE)
        }
        AuthAction::Detach { database_name } => {
            refuse(format!("DETACH of '{database_name}'"), OWN_DATABASE)
        }
        AuthAction::Unknown {
            code: ffi::SQLITE_ATTACH,
            ..
        } => refuse("ATTACH of a computed file name".into(), OWN_DATABASE),
        AuthAction::Unknown {
            code: ffi::SQLITE_DETACH,
            ..
        } => refuse("DETACH".into(), OWN_DATABASE),
        AuthAction::Function { function_name }
            if function_name.eq_ignore_ascii_case("load_extension") =>
        {
            refuse(
                "load_extension()".into(),
                "extensions cannot be loaded into the engine",
            )
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value: Some(value),
        } if !engine
            && !SETTABLE_PRAGMAS
                .iter()
                .any(|p| p.eq_ignore_ascii_case(pragma_name)) =>
        {
            refuse(format!("PRAGMA {pragma_name} = {value}"), SHARED_STATE)
        }
        AuthAction::CreateTempTable { table_name: name }
        | AuthAction::CreateTempView {
            view_name: name, ..
        }
        | AuthAction::CreateTempTrigger {
            trigger_name: name, ..
        }
        | AuthAction::CreateTempIndex {
            index_name: name, ..
        } if !engine => refuse(format!("CREATE TEMP of '{name}'"), TEMP_SHARED),
        // `CREATE TABLE temp.t` is a plain create in the temp schema.
        AuthAction::CreateTable { table_name: name }
        | AuthAction::CreateView {
            view_name: name, ..
        }
        | AuthAction::CreateTrigger {
            trigger_name: name, ..
        }
        | AuthAction::CreateIndex {
            index_name: name, ..
        }
        | AuthAction::CreateVtable {
            table_name: name, ..
        } if !engine && is_temp(ctx.database_name) => {
            refuse(format!("CREATE TEMP of '{name}'"), TEMP_SHARED)
        }
        // Its own schema is known once it inserts its row (module docs).
        AuthAction::CreateTrigger { trigger_name, .. } if !engine => {
            TRIGGER.with_borrow_mut(|t| *t = Some(trigger_name.to_owned()));
            Authorization::Allow
        }
        AuthAction::Insert { table_name }
            if !engine && is_temp(ctx.database_name) && is_schema_table(table_name) =>
        {
            temp_schema_row()
        }
        _ => Authorization::Allow,
    }
}

/// Whether `database` is the temp schema.
fn is_temp(database: Option<&str>) -> bool {
    database.is_some_and(|db| db.eq_ignore_ascii_case("temp"))
}

/// Whether `table` is a schema's table of objects, by any of its names.
fn is_schema_table(table: &str) -> bool {
    SCHEMA_TABLES.iter().any(|t| t.eq_ignore_ascii_case(table))
}

/// The names of a schema's table of objects (`sqlite_master` of `temp` is
/// `sqlite_temp_master`; SQLite's own SQL uses the legacy names).
const SCHEMA_TABLES: &[&str] = &[
    "sqlite_master",
    "sqlite_schema",
    "sqlite_temp_master",
    "sqlite_temp_schema",
];

/// The decision on a row of the temp schema's table: refused for the
/// trigger the statement creates (whose create action named another
/// schema); any other object's create action follows, names `temp`, and is
/// refused by name.
fn temp_schema_row() -> Authorization {
    match TRIGGER.with_borrow_mut(Option::take) {
        Some(name) => refuse(format!("CREATE TEMP of '{name}'"), TEMP_SHARED),
        None => Authorization::Allow,
    }
}

/// Bounds a freshly opened connection and installs the authorizer (see the
/// module docs); `in_memory` for a `:memory:` entry. Call after the
/// engine's own set-up pragmas, which the authorizer would refuse.
pub(crate) fn install(conn: &mut Connection, in_memory: bool) -> rusqlite::Result<()> {
    heap_limit();
    let max_value = i32::try_from(MAX_VALUE_BYTES).unwrap_or(i32::MAX);
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, max_value)?;
    let max_sql = i32::try_from(MAX_SQL_BYTES).unwrap_or(i32::MAX);
    conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, max_sql)?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, MAX_ATTACHED)?;
    let max_pattern = i32::try_from(MAX_PATTERN_BYTES).unwrap_or(i32::MAX);
    conn.set_limit(Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, max_pattern)?;
    super::functions::install(conn)?;
    conn.set_limit(Limit::SQLITE_LIMIT_WORKER_THREADS, 0)?;
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    cap_pages(conn, "temp", TEMP_DB_MAX_BYTES)?;
    if in_memory {
        cap_pages(conn, "main", MEMORY_DB_MAX_BYTES)?;
    }
    conn.authorizer(Some(authorize))
}

/// Caps database `schema` at `bytes` through its `max_page_count`.
fn cap_pages(conn: &Connection, schema: &str, bytes: u64) -> rusqlite::Result<()> {
    let page: i64 = conn.query_row(&format!("PRAGMA {schema}.page_size"), [], |r| r.get(0))?;
    let pages = bytes / u64::try_from(page.max(512)).unwrap_or(512);
    let _now: i64 = conn.query_row(
        &format!("PRAGMA {schema}.max_page_count = {pages}"),
        [],
        |r| r.get(0),
    )?;
    Ok(())
}

/// Sets the library's heap limits, once per process.
fn heap_limit() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: both calls only store a number in SQLite's global memory
        // state, under its own mutex; they are safe at any time, from any
        // thread, with connections open or not.
        unsafe {
            ffi::sqlite3_hard_heap_limit64(HEAP_HARD_LIMIT);
            ffi::sqlite3_soft_heap_limit64(HEAP_SOFT_LIMIT);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guarded() -> Connection {
        super::super::heap::install();
        let mut conn = Connection::open_in_memory().expect("open");
        install(&mut conn, true).expect("install");
        conn
    }

    /// Runs `sql` as user SQL, as run.rs does: prepared strictly, stepped
    /// under [`stepping`]; the refusal message when refused.
    fn user(conn: &Connection, sql: &str) -> Result<(), String> {
        clear_refusal();
        let out = (|| {
            let mut stmt = conn.prepare(sql)?;
            let _step = stepping();
            let mut rows = stmt.raw_query();
            while rows.next()?.is_some() {}
            Ok::<(), rusqlite::Error>(())
        })();
        out.map_err(|e| take_refusal().unwrap_or_else(|| format!("other: {e}")))
    }

    #[test]
    fn attach_detach_vacuum_into_and_load_extension_are_refused() {
        let conn = guarded();
        let dir = std::env::temp_dir().join(format!("warren-guard-{}", std::process::id()));
        let path = dir.join("escaped.db");
        let _ = std::fs::create_dir_all(&dir);
        for (sql, what) in [
            (format!("ATTACH '{}' AS e", path.display()), "ATTACH of '/"),
            ("ATTACH ':memory:' AS m".into(), "ATTACH of ':memory:'"),
            ("ATTACH '' AS m".into(), "ATTACH of ''"),
            ("ATTACH 'x' || '.db' AS m".into(), "ATTACH of a computed"),
            ("DETACH temp".into(), "DETACH"),
            (format!("VACUUM INTO '{}'", path.display()), "ATTACH of '/"),
            ("SELECT load_extension('x.so')".into(), "load_extension()"),
        ] {
            let err = user(&conn, &sql).expect_err(&sql);
            assert!(
                err.contains(what) && err.contains("not allowed"),
                "{sql}: {err}"
            );
        }
        assert!(!path.exists(), "a refused statement created {path:?}");
        let _ = std::fs::remove_dir_all(&dir);
        // Plain VACUUM still works: its scratch attach happens while it steps.
        user(&conn, "CREATE TABLE t (x)").expect("create");
        user(&conn, "VACUUM").expect("vacuum");
        user(&conn, "VACUUM main").expect("vacuum main");
    }

    #[test]
    fn refused_pragmas_are_refused_only_when_set_and_only_for_users() {
        let conn = guarded();
        let more = [
            "default_cache_size",
            "fullfsync",
            "checkpoint_fullfsync",
            "encoding",
        ];
        for p in REFUSED_PRAGMAS.iter().chain(&more) {
            let err = user(&conn, &format!("PRAGMA {p} = 1")).expect_err(p);
            assert!(err.contains(&format!("PRAGMA {p} = 1")), "{err}");
            let err = user(&conn, &format!("PRAGMA main.{} (1)", p.to_uppercase())).expect_err(p);
            assert!(err.contains("not allowed"), "{err}");
        }
        for ok in [
            "PRAGMA cache_size",
            "PRAGMA foreign_keys",
            "PRAGMA journal_mode",
            "PRAGMA user_version = 7",
            "PRAGMA application_id = 9",
            "PRAGMA table_info(sqlite_schema)",
            "PRAGMA integrity_check",
            "PRAGMA foreign_key_check",
            "PRAGMA optimize",
            "PRAGMA incremental_vacuum(1)",
            "SELECT * FROM pragma_table_info('sqlite_schema')",
        ] {
            user(&conn, ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        // The engine's own SQL may set them (a read-only transaction).
        {
            let _engine = engine();
            conn.execute_batch("PRAGMA query_only = ON; PRAGMA query_only = OFF")
                .expect("engine pragma");
        }
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .expect("read");
        assert_eq!(fk, 1, "a refused pragma changed the connection");
    }

    #[test]
    fn pragma_functions_cannot_set_what_the_pragma_may_not() {
        let conn = guarded();
        for sql in [
            "SELECT * FROM pragma_foreign_keys(0)",
            "SELECT * FROM pragma_cache_size(-1000000)",
            "SELECT * FROM pragma_query_only(1)",
            "SELECT * FROM pragma_temp_store(2)",
        ] {
            // Refused, or no such function: either way nothing changes.
            let _ = user(&conn, sql);
        }
        let read = |p: &str| -> i64 {
            conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))
                .expect(p)
        };
        assert_eq!(read("foreign_keys"), 1);
        assert_eq!(read("cache_size"), -2000);
        assert_eq!(read("query_only"), 0);
        assert_eq!(read("temp_store"), 0);
    }

    #[test]
    fn temp_and_in_memory_databases_stop_at_their_caps() {
        const FILL: &str = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c \
                            WHERE i < 300) INSERT INTO {t} SELECT randomblob(1000000) FROM c";
        let conn = guarded();
        for (create, table) in [
            ("CREATE TEMP TABLE big (x)", "temp.big"),
            ("CREATE TABLE big (x)", "main.big"),
        ] {
            // Users may make no temporary objects; the cap is the second
            // wall, checked with the engine's own table.
            let _engine = engine();
            conn.execute_batch(create).expect(create);
            let err = conn
                .execute_batch(&FILL.replace("{t}", table))
                .expect_err(table);
            assert_eq!(
                err.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DiskFull),
                "{table}: {err}"
            );
        }
        // A file entry's temporary database is capped too.
        let dir = std::env::temp_dir().join(format!("warren-guard-t-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        super::super::heap::install();
        let mut file = Connection::open(dir.join("f.db")).expect("open");
        install(&mut file, false).expect("install");
        let _engine = engine();
        file.execute_batch("CREATE TEMP TABLE big (x)")
            .expect("temp");
        let err = file
            .execute_batch(&FILL.replace("{t}", "temp.big"))
            .expect_err("temp cap");
        assert_eq!(err.sqlite_error_code(), Some(rusqlite::ErrorCode::DiskFull));
        drop(file);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_value_past_the_length_limit_fails_inside_the_engine() {
        let conn = guarded();
        let err = conn
            .query_row("SELECT length(randomblob(999999999))", [], |r| {
                r.get::<_, i64>(0)
            })
            .expect_err("too big");
        assert_eq!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::TooBig),
            "{err}"
        );
        let n: i64 = conn
            .query_row("SELECT length(randomblob(1000000))", [], |r| r.get(0))
            .expect("fits");
        assert_eq!(n, 1_000_000);
    }

    #[test]
    fn the_heap_limit_is_set_once_for_the_library() {
        let _conn = guarded();
        // SAFETY: a negative argument only reads the current limit.
        let hard = unsafe { ffi::sqlite3_hard_heap_limit64(-1) };
        assert_eq!(hard, HEAP_HARD_LIMIT);
    }
}
