//! What a database entry and a call are configured with: the entry's
//! connection settings, a transaction's options and a result's size limit.
//!
//! Everything here is plain data; validation that needs the engine (an
//! isolation level the engine refuses) happens where it is used.

use std::path::PathBuf;
use std::time::Duration;

use warren_core::{ErrorKind, ProcError};

/// Connections a PostgreSQL pool opens when `max_open` is 0 (Wippy's "no
/// limit"): keeps 100,000 processes from opening a connection each.
pub const DEFAULT_MAX_OPEN: usize = 16;

/// How long a call waits for a pooled connection by default before it fails
/// with `UNAVAILABLE`: bounds the wait of a process behind a saturated pool.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections older than this are replaced by default (`pool.max_lifetime`).
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// How a database entry connects.
#[derive(Clone, Debug)]
pub enum DbConfig {
    /// An embedded SQLite database with exactly one connection.
    Sqlite {
        /// The file, or a private in-memory database.
        file: SqliteFile,
        /// The connection is reopened when older than this (file databases
        /// only: reopening an in-memory one would lose it).
        max_lifetime: Duration,
        /// A statement running longer is interrupted (`TIMEOUT`).
        query_timeout: Option<Duration>,
    },
    /// A pooled PostgreSQL server.
    Postgres(PgConfig),
}

/// Where an SQLite database lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqliteFile {
    /// A file, opened create-if-missing in WAL mode.
    Path(PathBuf),
    /// `:memory:`: one private database, gone at shutdown.
    Memory,
}

/// The settings of a PostgreSQL entry.
#[derive(Clone)]
pub struct PgConfig {
    /// Server host name, or (starting with `/`) the Unix socket directory.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Database name.
    pub database: String,
    /// User name.
    pub username: String,
    /// Password (never shown in messages or `Debug`).
    pub password: String,
    /// A `postgres://` URL used instead of the five fields above.
    pub dsn: Option<String>,
    /// Most connections open at once; 0 means [`DEFAULT_MAX_OPEN`].
    pub max_open: usize,
    /// Most idle connections kept; 0 means no cap below `max_open`.
    pub max_idle: usize,
    /// Connections older than this are replaced.
    pub max_lifetime: Duration,
    /// Longest wait for a free connection (`UNAVAILABLE` after).
    pub acquire_timeout: Duration,
    /// A statement running longer is cancelled (`TIMEOUT`).
    pub query_timeout: Option<Duration>,
    /// libpq keywords: `sslmode`, `connect_timeout`, `application_name`
    /// are honoured, others are warned about and ignored.
    pub options: Vec<(String, String)>,
    /// The application's hosts (tenants), any of which may call the entry:
    /// with more than one, the pool keeps connections for hosts holding
    /// none from the first call (see `postgres/gate.rs`).
    pub tenants: usize,
}

impl Default for PgConfig {
    fn default() -> Self {
        PgConfig {
            host: "localhost".into(),
            port: 5432,
            database: String::new(),
            username: String::new(),
            password: String::new(),
            dsn: None,
            max_open: DEFAULT_MAX_OPEN,
            max_idle: 0,
            max_lifetime: DEFAULT_MAX_LIFETIME,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            query_timeout: None,
            options: Vec::new(),
            tenants: 1,
        }
    }
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .field("dsn", &self.dsn.as_ref().map(|_| "<hidden>"))
            .field("max_open", &self.max_open)
            .field("max_idle", &self.max_idle)
            .field("max_lifetime", &self.max_lifetime)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("query_timeout", &self.query_timeout)
            .field("options", &self.options)
            .field("tenants", &self.tenants)
            .finish()
    }
}

impl PgConfig {
    /// `max_open` with 0 read as [`DEFAULT_MAX_OPEN`].
    pub fn effective_max_open(&self) -> usize {
        if self.max_open == 0 {
            DEFAULT_MAX_OPEN
        } else {
            self.max_open
        }
    }
}

/// A transaction's isolation level (`sql.isolation.*`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Isolation {
    /// The engine's default.
    #[default]
    Default,
    /// `read_uncommitted`.
    ReadUncommitted,
    /// `read_committed`.
    ReadCommitted,
    /// `write_committed` (no engine here supports it).
    WriteCommitted,
    /// `repeatable_read`.
    RepeatableRead,
    /// `serializable`.
    Serializable,
}

impl Isolation {
    /// The level named by its lower-case constant value; `INVALID` otherwise.
    pub fn from_name(name: &str) -> Result<Isolation, ProcError> {
        Ok(match name {
            "default" => Isolation::Default,
            "read_uncommitted" => Isolation::ReadUncommitted,
            "read_committed" => Isolation::ReadCommitted,
            "write_committed" => Isolation::WriteCommitted,
            "repeatable_read" => Isolation::RepeatableRead,
            "serializable" => Isolation::Serializable,
            other => {
                return Err(ProcError::new(
                    ErrorKind::Invalid,
                    format!("unknown isolation level '{other}'"),
                ));
            }
        })
    }

    /// The lower-case constant value (`"read_committed"`).
    pub fn name(self) -> &'static str {
        match self {
            Isolation::Default => "default",
            Isolation::ReadUncommitted => "read_uncommitted",
            Isolation::ReadCommitted => "read_committed",
            Isolation::WriteCommitted => "write_committed",
            Isolation::RepeatableRead => "repeatable_read",
            Isolation::Serializable => "serializable",
        }
    }
}

/// The options of `db:begin(opts)`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TxOptions {
    /// The isolation level.
    pub isolation: Isolation,
    /// Writes inside the transaction fail.
    pub read_only: bool,
}

/// Bounds on what one query may build in the caller's memory.
#[derive(Clone, Debug)]
pub struct ResultLimits {
    /// Rows whose size (about the host memory their value tree holds)
    /// exceeds this fail with `INVALID` and nothing is returned.
    pub max_bytes: usize,
    /// Where the rows' bytes are taken from as they are built, if
    /// anywhere (see [`crate::ResultRoom`]); the caller keeps a reference
    /// to hold them until it has the result.
    pub room: Option<std::sync::Arc<crate::ResultRoom>>,
}

impl ResultLimits {
    /// At most `max_bytes`, taken from no room.
    pub fn bytes(max_bytes: usize) -> ResultLimits {
        ResultLimits {
            max_bytes,
            room: None,
        }
    }
}

impl Default for ResultLimits {
    fn default() -> Self {
        ResultLimits::bytes(warren_core::limits::DEFAULT_MEMORY_PER_PROCESS as usize)
    }
}
