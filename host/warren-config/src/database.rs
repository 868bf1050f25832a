//! Database entries (modules.md §1 "sql", "Entries"): `db.sql.sqlite` and
//! `db.sql.postgres` read into a [`DatabaseEntry`], with their pool
//! defaults, `${env:...}` placeholders and `<field>_env` references
//! resolved at load (see `placeholders`), and a password that no message
//! and no `Debug` output shows. `db.sql.mysql`, `db.sql.mssql` and
//! `db.sql.oracle` are refused as unsupported.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_yaml_ng::Value as Yaml;
use warren_core::Value;

use crate::ConfigError;
use crate::index::{Ctx, describe};
use crate::placeholders::{self, Expanded};

/// `kind: db.sql.sqlite`.
pub(crate) const SQLITE: &str = "db.sql.sqlite";
/// `kind: db.sql.postgres`.
pub(crate) const POSTGRES: &str = "db.sql.postgres";
/// Database kinds Wippy has and Warren refuses.
pub(crate) const UNSUPPORTED: [&str; 3] = ["db.sql.mysql", "db.sql.mssql", "db.sql.oracle"];

/// What `Debug` output and the registry's `data` show instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// The `sslmode` values `options.sslmode` may take.
const SSLMODES: [&str; 5] = ["disable", "prefer", "require", "verify-ca", "verify-full"];

/// The value of `:memory:` for an SQLite `file`.
const MEMORY: &str = ":memory:";

/// A database entry.
#[derive(Clone, Debug, PartialEq)]
pub struct DatabaseEntry {
    /// `<namespace>:<name>`.
    pub id: String,
    /// The engine and how to reach it.
    pub kind: DatabaseKind,
    /// The connection pool (`pool:`).
    pub pool: PoolConfig,
    /// `query_timeout`: a statement running longer is interrupted (`None`: no limit).
    pub query_timeout: Option<Duration>,
}

/// The engine of a database entry. Its `Debug` output redacts the
/// password and the DSN.
#[derive(Clone, PartialEq)]
pub enum DatabaseKind {
    /// `kind: db.sql.sqlite`.
    Sqlite {
        /// `file`.
        file: SqliteFile,
    },
    /// `kind: db.sql.postgres`. With `dsn`, the five connection fields are
    /// empty (`port` 0): the DSN says everything.
    Postgres {
        /// `host`: a name, an address, or (starting with `/`) the directory
        /// of the server's Unix socket.
        host: String,
        /// `port`.
        port: u16,
        /// `database`.
        database: String,
        /// `username`.
        username: String,
        /// `password` (may be empty). Never printed.
        password: String,
        /// `dsn`: a `postgres://` or `postgresql://` URL in place of the
        /// five fields above. Never printed (it may hold a password).
        dsn: Option<String>,
        /// `options`: libpq keywords and their values, in the order given
        /// (`sslmode` is one of disable, prefer, require, verify-ca,
        /// verify-full).
        options: Vec<(String, String)>,
    },
}

impl DatabaseKind {
    /// The `kind:` spelling.
    pub fn name(&self) -> &'static str {
        match self {
            DatabaseKind::Sqlite { .. } => SQLITE,
            DatabaseKind::Postgres { .. } => POSTGRES,
        }
    }
}

impl std::fmt::Debug for DatabaseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseKind::Sqlite { file } => f.debug_struct("Sqlite").field("file", file).finish(),
            DatabaseKind::Postgres {
                host,
                port,
                database,
                username,
                password: _,
                dsn,
                options,
            } => f
                .debug_struct("Postgres")
                .field("host", host)
                .field("port", port)
                .field("database", database)
                .field("username", username)
                .field("password", &REDACTED)
                .field("dsn", &dsn.as_ref().map(|_| REDACTED))
                .field("options", options)
                .finish(),
        }
    }
}

/// Where an SQLite database lives.
#[derive(Clone, Debug, PartialEq)]
pub enum SqliteFile {
    /// A file, resolved against the application folder (opened
    /// create-if-missing).
    Path(PathBuf),
    /// `:memory:`: one private database per entry, gone at shutdown.
    Memory,
}

/// The connection pool of a database entry (`pool:`). SQLite uses only
/// `max_lifetime`: it has exactly one connection.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolConfig {
    /// `pool.max_open`: connections at most (default 16; Wippy's `0`, no
    /// limit, is read as 16).
    pub max_open: u32,
    /// `pool.max_idle`: idle connections kept (default 0; at most
    /// `max_open`, as Go's `database/sql` clamps it).
    pub max_idle: u32,
    /// `pool.max_lifetime`: connections older than this are replaced
    /// (default 1h). Wippy's `0` (Go's "no limit") reads as
    /// [`Duration::MAX`]: never replaced.
    pub max_lifetime: Duration,
    /// `pool.acquire_timeout`: how long a call waits for a free connection
    /// before `UNAVAILABLE` (default 30s, never zero).
    pub acquire_timeout: Duration,
}

/// `pool.max_open` when absent or 0.
const DEFAULT_MAX_OPEN: u32 = 16;

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_open: DEFAULT_MAX_OPEN,
            max_idle: 0,
            max_lifetime: Duration::from_secs(3600),
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

/// Replaces the secrets of a database entry's `data` (what the registry
/// shows): its `password` and `dsn`.
pub(crate) fn redact_data(data: &mut Value) {
    redact_keys(data, &["password", "dsn"]);
}

/// Replaces the values of `keys` in an entry's `data` (what the registry
/// shows) with [`REDACTED`].
pub(crate) fn redact_keys(data: &mut Value, keys: &[&str]) {
    let Value::Map(pairs) = data else {
        return;
    };
    for (key, value) in pairs {
        if key.as_str().is_some_and(|k| keys.contains(&k)) {
            *value = Value::str(REDACTED);
        }
    }
}

/// The message for an unsupported database kind, if `kind` is one.
pub(crate) fn unsupported(kind: &str) -> Option<String> {
    UNSUPPORTED.contains(&kind).then(|| {
        format!(
            "'{kind}' is not supported: Warren's databases are SQLite ({SQLITE}) \
             and PostgreSQL ({POSTGRES})"
        )
    })
}

/// `kind: db.sql.sqlite`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqliteYaml {
    #[serde(rename = "name")]
    _name: String,
    #[serde(rename = "kind")]
    _kind: String,
    file: String,
    pool: Option<PoolYaml>,
    query_timeout: Option<Yaml>,
    /// libpq keywords: ignored for SQLite (modules.md).
    #[serde(rename = "options")]
    _options: Option<Yaml>,
    #[serde(rename = "meta")]
    _meta: Option<Yaml>,
    /// A database exists from load: accepted, no effect.
    #[serde(rename = "lifecycle")]
    _lifecycle: Option<Yaml>,
}

/// `kind: db.sql.postgres`. The connection fields are read as raw YAML so
/// that a serde message never quotes a password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresYaml {
    #[serde(rename = "name")]
    _name: String,
    #[serde(rename = "kind")]
    _kind: String,
    host: Option<Yaml>,
    host_env: Option<String>,
    port: Option<Yaml>,
    port_env: Option<String>,
    database: Option<Yaml>,
    database_env: Option<String>,
    username: Option<Yaml>,
    username_env: Option<String>,
    password: Option<Yaml>,
    password_env: Option<String>,
    dsn: Option<Yaml>,
    pool: Option<PoolYaml>,
    query_timeout: Option<Yaml>,
    options: Option<Yaml>,
    #[serde(rename = "meta")]
    _meta: Option<Yaml>,
    /// A database exists from load and connects on first use: accepted, no effect.
    #[serde(rename = "lifecycle")]
    _lifecycle: Option<Yaml>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PoolYaml {
    max_open: Option<u32>,
    max_idle: Option<u32>,
    max_lifetime: Option<Yaml>,
    acquire_timeout: Option<Yaml>,
}

/// A string setting after resolution, and how a message shows it.
pub(crate) struct Setting {
    /// The value to use.
    pub(crate) value: String,
    /// The value as written (quoted), or where it came from: never a
    /// resolved value.
    shown: String,
}

/// One PostgreSQL connection field as written: its value and its `_env`.
struct Field {
    key: &'static str,
    value: Option<Yaml>,
    env: Option<String>,
    secret: bool,
}

impl Field {
    fn new(key: &'static str, value: Option<Yaml>, env: Option<String>) -> Field {
        Field {
            key,
            value,
            env,
            secret: false,
        }
    }

    fn given(&self) -> bool {
        self.value.is_some() || self.env.is_some()
    }
}

impl Ctx<'_> {
    /// Reads a `db.sql.sqlite` or `db.sql.postgres` entry.
    pub(crate) fn database(
        &self,
        id: &str,
        kind: &str,
        yaml: &Yaml,
    ) -> Result<DatabaseEntry, ConfigError> {
        let (kind, pool, query_timeout) = if kind == SQLITE {
            let y: SqliteYaml = self.parse(id, yaml)?;
            (self.sqlite(id, &y.file)?, y.pool, y.query_timeout)
        } else {
            let mut y: PostgresYaml = self.parse(id, yaml)?;
            let (pool, query_timeout) = (y.pool.take(), y.query_timeout.take());
            (self.postgres(id, y)?, pool, query_timeout)
        };
        Ok(DatabaseEntry {
            id: id.to_owned(),
            kind,
            pool: self.pool(id, pool.unwrap_or_default())?,
            query_timeout: self.positive_duration(id, "query_timeout", query_timeout)?,
        })
    }

    fn sqlite(&self, id: &str, file: &str) -> Result<DatabaseKind, ConfigError> {
        let file = self.resolve(id, "file", file, false)?;
        let file = match file.value.as_str() {
            "" => return Err(self.key_error(id, "file", format!("{} is empty", file.shown))),
            MEMORY => SqliteFile::Memory,
            path => {
                self.path_text(id, "file", path)?;
                SqliteFile::Path(self.root.join(path))
            }
        };
        Ok(DatabaseKind::Sqlite { file })
    }

    fn postgres(&self, id: &str, y: PostgresYaml) -> Result<DatabaseKind, ConfigError> {
        let options = self.options(id, y.options)?;
        let password = Field {
            secret: true,
            ..Field::new("password", y.password, y.password_env)
        };
        let fields = [
            Field::new("host", y.host, y.host_env),
            Field::new("port", y.port, y.port_env),
            Field::new("database", y.database, y.database_env),
            Field::new("username", y.username, y.username_env),
            password,
        ];
        if let Some(dsn) = y.dsn {
            return self.postgres_dsn(id, dsn, &fields, options);
        }
        let [host, port, database, username, password] = fields.map(|f| self.required(id, f));
        Ok(DatabaseKind::Postgres {
            host: self.non_empty(id, "host", host?)?,
            port: self.port(id, port?)?,
            database: self.non_empty(id, "database", database?)?,
            username: self.non_empty(id, "username", username?)?,
            password: password?.value,
            dsn: None,
            options,
        })
    }

    /// A PostgreSQL entry given by `dsn` alone.
    fn postgres_dsn(
        &self,
        id: &str,
        dsn: Yaml,
        fields: &[Field],
        options: Vec<(String, String)>,
    ) -> Result<DatabaseKind, ConfigError> {
        if let Some(field) = fields.iter().find(|f| f.given()) {
            let key = if field.value.is_some() {
                field.key.to_owned()
            } else {
                format!("{}_env", field.key)
            };
            let msg = "cannot be combined with dsn, which gives the whole connection";
            return Err(self.key_error(id, &key, msg));
        }
        let text = self.text(id, "dsn", dsn, true)?.value;
        let url = text.starts_with("postgres://") || text.starts_with("postgresql://");
        if !url {
            let msg = "expected a postgres:// or postgresql:// URL (the value is not shown: \
                       it may hold a password)";
            return Err(self.key_error(id, "dsn", msg));
        }
        Ok(DatabaseKind::Postgres {
            host: String::new(),
            port: 0,
            database: String::new(),
            username: String::new(),
            password: String::new(),
            dsn: Some(text),
            options,
        })
    }

    /// A connection field that must be given (as itself or as `_env`).
    fn required(&self, id: &str, field: Field) -> Result<Setting, ConfigError> {
        let key = field.key;
        self.field(id, field)?.ok_or_else(|| {
            let msg = format!("missing: give {key}, {key}_env or dsn");
            self.key_error(id, key, msg)
        })
    }

    /// A connection field from its value or its `_env`, if given.
    fn field(&self, id: &str, field: Field) -> Result<Option<Setting>, ConfigError> {
        let key = field.key;
        match (field.value, field.env) {
            (Some(_), Some(_)) => {
                let msg = format!("give {key} or {key}_env, not both");
                Err(self.key_error(id, &format!("{key}_env"), msg))
            }
            (Some(value), None) => self.text(id, key, value, field.secret).map(Some),
            (None, Some(name)) => self.env_field(id, key, &name).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// The value of `<key>_env: name`.
    fn env_field(&self, id: &str, key: &str, name: &str) -> Result<Setting, ConfigError> {
        let env_key = format!("{key}_env");
        match self.variable(name) {
            Ok(Some(value)) => Ok(Setting {
                value,
                shown: format!("the value of variable '{name}' ({env_key})"),
            }),
            Ok(None) => {
                let msg = format!("variable '{name}' is not set (or is empty)");
                Err(self.key_error(id, &env_key, msg))
            }
            Err(msg) => Err(self.key_error(id, &env_key, msg)),
        }
    }

    /// A string (or number) at `key`, placeholders resolved.
    fn text(&self, id: &str, key: &str, value: Yaml, secret: bool) -> Result<Setting, ConfigError> {
        match value {
            Yaml::String(raw) => self.resolve(id, key, &raw, secret),
            Yaml::Number(n) => Ok(Setting {
                value: n.to_string(),
                shown: format!("{n}"),
            }),
            other => {
                let found = match other {
                    // `describe` would quote the value.
                    Yaml::Bool(_) if secret => "a boolean".to_owned(),
                    Yaml::Tagged(_) if secret => "a tagged value".to_owned(),
                    _ => describe(&other),
                };
                let msg = format!("expected a string, found {found}");
                Err(self.key_error(id, key, msg))
            }
        }
    }

    /// Resolves the placeholders of `raw`, the string at `key`.
    pub(crate) fn resolve(
        &self,
        id: &str,
        key: &str,
        raw: &str,
        secret: bool,
    ) -> Result<Setting, ConfigError> {
        match placeholders::expand(raw, &|name| self.variable(name)) {
            Ok(Expanded { text, .. }) => Ok(Setting {
                value: text,
                shown: format!("{raw:?}"),
            }),
            Err(msg) if secret => Err(self.key_error(id, key, msg)),
            Err(msg) => Err(self.key_error(id, key, format!("{raw:?}: {msg}"))),
        }
    }

    fn non_empty(&self, id: &str, key: &str, setting: Setting) -> Result<String, ConfigError> {
        if setting.value.trim().is_empty() {
            return Err(self.key_error(id, key, format!("{} is empty", setting.shown)));
        }
        Ok(setting.value)
    }

    fn port(&self, id: &str, setting: Setting) -> Result<u16, ConfigError> {
        match setting.value.trim().parse::<u16>() {
            Ok(port) if port > 0 => Ok(port),
            _ => {
                let msg = format!("{} is not a port number (1-65535)", setting.shown);
                Err(self.key_error(id, "port", msg))
            }
        }
    }

    /// `options:`, a map of libpq keywords to strings or numbers.
    fn options(&self, id: &str, value: Option<Yaml>) -> Result<Vec<(String, String)>, ConfigError> {
        let map = match value {
            None | Some(Yaml::Null) => return Ok(Vec::new()),
            Some(Yaml::Mapping(map)) => map,
            Some(other) => {
                let msg = format!(
                    "expected a map of libpq keywords to values, found {}",
                    describe(&other)
                );
                return Err(self.key_error(id, "options", msg));
            }
        };
        let mut out = Vec::new();
        for (keyword, value) in map {
            let Some(keyword) = keyword.as_str() else {
                let msg = format!("a keyword must be a string, found {}", describe(&keyword));
                return Err(self.key_error(id, "options", msg));
            };
            let value = self.option(id, keyword, value)?;
            out.push((keyword.to_owned(), value));
        }
        Ok(out)
    }

    /// The value of `options.<keyword>`.
    fn option(&self, id: &str, keyword: &str, value: Yaml) -> Result<String, ConfigError> {
        let key = format!("options.{keyword}");
        if keyword == "password" {
            let msg = "a password is not accepted here: give password or password_env";
            return Err(self.key_error(id, &key, msg));
        }
        if matches!(
            value,
            Yaml::Bool(_) | Yaml::Null | Yaml::Sequence(_) | Yaml::Mapping(_)
        ) {
            let msg = format!("expected a string or a number, found {}", describe(&value));
            return Err(self.key_error(id, &key, msg));
        }
        let setting = self.text(id, &key, value, false)?;
        check_option(keyword, &setting)
            .map(|()| setting.value)
            .map_err(|msg| self.key_error(id, &key, msg))
    }

    fn pool(&self, id: &str, y: PoolYaml) -> Result<PoolConfig, ConfigError> {
        let d = PoolConfig::default();
        let max_open = y.max_open.filter(|n| *n > 0).unwrap_or(d.max_open);
        let max_lifetime = self.duration_setting(id, "pool.max_lifetime", y.max_lifetime)?;
        let acquire_timeout =
            self.positive_duration(id, "pool.acquire_timeout", y.acquire_timeout)?;
        Ok(PoolConfig {
            max_open,
            max_idle: y.max_idle.unwrap_or(d.max_idle).min(max_open),
            max_lifetime: match max_lifetime {
                Some(d) if d.is_zero() => Duration::MAX,
                other => other.unwrap_or(d.max_lifetime),
            },
            acquire_timeout: acquire_timeout.unwrap_or(d.acquire_timeout),
        })
    }

    /// An optional duration at `key` that must be more than zero.
    fn positive_duration(
        &self,
        id: &str,
        key: &str,
        value: Option<Yaml>,
    ) -> Result<Option<Duration>, ConfigError> {
        let shown = value.as_ref().map(describe).unwrap_or_default();
        match self.duration_setting(id, key, value)? {
            Some(d) if d.is_zero() => {
                let msg = format!("{shown} must be more than 0 (omit {key} for the default)");
                Err(self.key_error(id, key, msg))
            }
            other => Ok(other),
        }
    }

    /// An optional duration at `key` ("30s", "1h"), placeholders resolved.
    fn duration_setting(
        &self,
        id: &str,
        key: &str,
        value: Option<Yaml>,
    ) -> Result<Option<Duration>, ConfigError> {
        let Some(Yaml::String(raw)) = value else {
            return value
                .map(|v| self.duration(id, key, Some(v), Duration::ZERO))
                .transpose();
        };
        let expanded = placeholders::expand(&raw, &|name| self.variable(name))
            .map_err(|msg| self.key_error(id, key, format!("{raw:?}: {msg}")))?;
        let parsed = self.duration(id, key, Some(Yaml::String(expanded.text)), Duration::ZERO);
        match parsed {
            // The message would quote the resolved value: quote the text as written.
            Err(_) if expanded.substituted => {
                let msg = format!("{raw:?} does not give a duration such as \"30s\"");
                Err(self.key_error(id, key, msg))
            }
            other => other.map(Some),
        }
    }
}

/// Checks the options Warren honours.
fn check_option(keyword: &str, setting: &Setting) -> Result<(), String> {
    let value = setting.value.as_str();
    let shown = &setting.shown;
    match keyword {
        "sslmode" if !SSLMODES.contains(&value) => Err(format!(
            "{shown} is not an sslmode (expected {})",
            SSLMODES.join(", ")
        )),
        "connect_timeout" if value.trim().parse::<u32>().is_err() => {
            Err(format!("{shown} is not a whole number of seconds"))
        }
        _ => Ok(()),
    }
}
