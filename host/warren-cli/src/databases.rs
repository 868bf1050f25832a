//! The application's I/O resources, opened once for every process: its
//! database entries (`db.sql.sqlite`, `db.sql.postgres`) for `sql`, each
//! one shared [`warren_sql::Database`] that connects on first use (a
//! database nobody queries costs nothing, and an unreachable server fails
//! the queries, not the start); its volumes (`fs.directory`) for `fs`; its
//! variables and storages (`env.*`) for `env`.

use std::sync::Arc;

use warren_config::{App, DatabaseEntry, DatabaseKind, SqliteFile};
use warren_env::Env;
use warren_fs::Volume;
use warren_lua::{Databases, Volumes};
use warren_sql::{Database, DbConfig, PgConfig};

use crate::Failure;

/// The driver's configuration of entry `e` of an application of `tenants`
/// hosts.
fn config(e: &DatabaseEntry, tenants: usize) -> DbConfig {
    match &e.kind {
        DatabaseKind::Sqlite { file } => DbConfig::Sqlite {
            file: match file {
                SqliteFile::Path(path) => warren_sql::SqliteFile::Path(path.clone()),
                SqliteFile::Memory => warren_sql::SqliteFile::Memory,
            },
            max_lifetime: e.pool.max_lifetime,
            query_timeout: e.query_timeout,
        },
        DatabaseKind::Postgres {
            host,
            port,
            database,
            username,
            password,
            dsn,
            options,
        } => DbConfig::Postgres(PgConfig {
            host: host.clone(),
            port: *port,
            database: database.clone(),
            username: username.clone(),
            password: password.clone(),
            dsn: dsn.clone(),
            max_open: usize::try_from(e.pool.max_open).unwrap_or(usize::MAX),
            max_idle: usize::try_from(e.pool.max_idle).unwrap_or(usize::MAX),
            max_lifetime: e.pool.max_lifetime,
            acquire_timeout: e.pool.acquire_timeout,
            query_timeout: e.query_timeout,
            options: options.clone(),
            tenants,
        }),
    }
}

/// Every database entry of `app`, opened (lazily connecting).
pub(crate) fn open(app: &App) -> Result<Arc<Databases>, Failure> {
    let mut dbs = Databases::new();
    let rt = warren_core::io_runtime().handle().clone();
    let tenants = app.hosts().count();
    for (id, entry) in app.databases() {
        let db = Database::open(id, config(entry, tenants), rt.clone())
            .map_err(|err| Failure::bad_input(anyhow::anyhow!("entry '{id}': {}", err.message)))?;
        dbs.insert(db);
    }
    Ok(Arc::new(dbs))
}

/// Every `fs.directory` entry of `app`, its root opened once.
pub(crate) fn volumes(app: &App) -> Result<Arc<Volumes>, Failure> {
    let mut out = Volumes::new();
    for v in app.volumes() {
        let id = &v.id;
        let vol = Volume::open(id, &v.directory, v.mode, v.auto_init)
            .map_err(|err| Failure::bad_input(anyhow::anyhow!("entry '{id}': {}", err.message)))?;
        out.insert(vol);
    }
    Ok(Arc::new(out))
}

/// The application's variables and their storages (`env.*` entries),
/// file storages created where `auto_create` asks.
pub(crate) fn variables(app: &App) -> Result<Arc<Env>, Failure> {
    let storages = app.env_storages().cloned().collect();
    let variables = app.env_variables().cloned().collect();
    let env = Env::new(storages, variables)
        .map_err(|err| Failure::bad_input(anyhow::anyhow!("{err}")))?;
    env.prepare()
        .map_err(|err| Failure::bad_input(anyhow::anyhow!("{}", err.message)))?;
    Ok(Arc::new(env))
}
