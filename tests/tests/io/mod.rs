//! The I/O modules through real processes (modules.md §1–2): `sql` on
//! SQLite files in a temporary directory and on a throwaway PostgreSQL
//! cluster, `http_client` against a server on 127.0.0.1.

// The throwaway PostgreSQL cluster of warren-sql's own tests.
#[path = "../../../host/warren-sql/tests/cluster/mod.rs"]
mod cluster;
mod env;
mod fs;
mod funcs;
mod http;
mod postgres;
mod server;
mod sqlite;

use std::sync::Arc;

use warren_core::Grants;
use warren_lua::Databases;
use warren_sql::{Database, DbConfig, SqliteFile};

pub use warren_tests::{TempDir, grants};

/// Databases `app.db:<name>` on SQLite files in `dir` (`query_timeout`
/// when given).
pub fn sqlite_dbs(
    dir: &TempDir,
    names: &[&str],
    timeout: Option<std::time::Duration>,
) -> Arc<Databases> {
    let mut dbs = Databases::new();
    let rt = warren_core::io_runtime().handle().clone();
    for name in names {
        let config = DbConfig::Sqlite {
            file: SqliteFile::Path(dir.0.join(format!("{name}.db"))),
            max_lifetime: std::time::Duration::from_secs(3600),
            query_timeout: timeout,
        };
        dbs.insert(Database::open(&format!("app.db:{name}"), config, rt.clone()).expect("open"));
    }
    Arc::new(dbs)
}

/// Database `app.db:pg` on this binary's throwaway PostgreSQL cluster
/// (database `postgres`), with `max_open` connections.
pub fn pg_dbs(max_open: usize) -> Arc<Databases> {
    let c = cluster::cluster();
    let config = warren_sql::PgConfig {
        host: c.host().to_owned(),
        port: c.port,
        database: "postgres".into(),
        username: "warren".into(),
        max_open,
        ..warren_sql::PgConfig::default()
    };
    let mut dbs = Databases::new();
    let rt = warren_core::io_runtime().handle().clone();
    dbs.insert(Database::open("app.db:pg", DbConfig::Postgres(config), rt).expect("open"));
    Arc::new(dbs)
}

/// Entry `id` running function `method` of `source` (a table of
/// functions), with every module and `grants`.
pub fn method_entry(id: &str, source: &str, method: &str, grants: Grants) -> warren_core::Program {
    let mut program =
        warren_lua::LuaProgram::new(format!("{id}.lua"), source).with_modules(&warren_lua::MODULES);
    program.method = method.into();
    program.grants = Arc::new(grants);
    program.into_program(id)
}
