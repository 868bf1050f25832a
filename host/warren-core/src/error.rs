//! Error kinds shared by every front-end, and the host's own error enums.
//!
//! [`ErrorKind`] mirrors the Lua `errors` module constants one for one, so an
//! error raised in one language keeps its kind in the other.

use std::fmt;

use crate::value::Value;

/// The kinds of the `errors` module.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A pid, name, entry or host does not exist.
    NotFound,
    /// A name is already registered.
    AlreadyExists,
    /// An argument is malformed.
    Invalid,
    /// The caller is not allowed to do this.
    PermissionDenied,
    /// The service is not available right now.
    Unavailable,
    /// A bug or broken invariant.
    Internal,
    /// The operation or process was cancelled or terminated.
    Canceled,
    /// Conflicting state.
    Conflict,
    /// A deadline passed.
    Timeout,
    /// A quota was exceeded.
    RateLimited,
    /// Anything else.
    Unknown,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::Invalid,
        ErrorKind::PermissionDenied,
        ErrorKind::Unavailable,
        ErrorKind::Internal,
        ErrorKind::Canceled,
        ErrorKind::Conflict,
        ErrorKind::Timeout,
        ErrorKind::RateLimited,
        ErrorKind::Unknown,
    ];

    /// The constant's name, as Lua code sees it (`"NOT_FOUND"`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::AlreadyExists => "ALREADY_EXISTS",
            ErrorKind::Invalid => "INVALID",
            ErrorKind::PermissionDenied => "PERMISSION_DENIED",
            ErrorKind::Unavailable => "UNAVAILABLE",
            ErrorKind::Internal => "INTERNAL",
            ErrorKind::Canceled => "CANCELED",
            ErrorKind::Conflict => "CONFLICT",
            ErrorKind::Timeout => "TIMEOUT",
            ErrorKind::RateLimited => "RATE_LIMITED",
            ErrorKind::Unknown => "UNKNOWN",
        }
    }

    /// The name the Lua `errors` module gives it (Wippy's: `NotFound`; the
    /// empty string for `Unknown`, the kind of an error made without one).
    pub fn lua_name(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "NotFound",
            ErrorKind::AlreadyExists => "AlreadyExists",
            ErrorKind::Invalid => "Invalid",
            ErrorKind::PermissionDenied => "PermissionDenied",
            ErrorKind::Unavailable => "Unavailable",
            ErrorKind::Internal => "Internal",
            ErrorKind::Canceled => "Canceled",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::Timeout => "Timeout",
            ErrorKind::RateLimited => "RateLimited",
            ErrorKind::Unknown => "",
        }
    }

    /// The kind named `name` (`NOT_FOUND` or Lua's `NotFound`), or
    /// `Unknown` for anything unrecognised.
    pub fn from_name(name: &str) -> ErrorKind {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name || k.lua_name() == name)
            .unwrap_or(ErrorKind::Unknown)
    }
}

/// An error as a process sees it: the same fields as a Lua error object.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcError {
    /// The error's kind.
    pub kind: ErrorKind,
    /// The (chained) message.
    pub message: String,
    /// Whether retrying may succeed.
    pub retryable: bool,
    /// Structured details, if any.
    pub details: Option<Value>,
}

impl ProcError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ProcError {
            kind,
            message: message.into(),
            retryable: false,
            details: None,
        }
    }

    /// The reason a forcefully terminated process exits with.
    pub fn terminated() -> Self {
        ProcError::new(ErrorKind::Canceled, "terminated")
    }
}

impl fmt::Display for ProcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.name())
    }
}

impl std::error::Error for ProcError {}

/// Longest part of a caller's id (an entry or host it named) an error
/// quotes: a spawn of a 1 MB entry id echoed it whole into its error,
/// control bytes and all.
pub(crate) const MAX_QUOTED_ID: usize = 64;

/// `id` as an error quotes it: at most [`MAX_QUOTED_ID`] characters,
/// control characters escaped, `...` when cut.
pub fn quoted_id(id: &str) -> String {
    let mut shown: String = id
        .chars()
        .take(MAX_QUOTED_ID)
        .flat_map(char::escape_debug)
        .collect();
    if id.chars().nth(MAX_QUOTED_ID).is_some() {
        shown.push_str("...");
    }
    shown
}

/// Why a spawn request was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpawnError {
    /// No entry with that id was loaded (the id as [`quoted_id`] shows it).
    #[error("entry '{0}' not found")]
    NoEntry(String),
    /// No host with that id exists (the id as [`quoted_id`] shows it).
    #[error("host '{0}' not found")]
    NoHost(String),
    /// The entry's language has no front-end in this runtime.
    #[error("entry '{entry}' needs the '{frontend}' front-end, which this runtime lacks")]
    NoFrontend {
        /// The entry id.
        entry: String,
        /// The missing front-end's name.
        frontend: String,
    },
    /// The runtime is shutting down.
    #[error("the runtime is shutting down")]
    ShuttingDown,
    /// The host runs `limit` processes already (`max_processes`).
    #[error("host '{host}' already runs its max_processes ({limit}) processes")]
    TooManyProcesses {
        /// The host id.
        host: String,
        /// Its `max_processes`.
        limit: usize,
    },
    /// The parent's host may not reach the target host (`allow_hosts`).
    #[error("{}", refused(op, from, to))]
    NotAllowed {
        /// What was refused (`spawn`).
        op: &'static str,
        /// The parent's host.
        from: String,
        /// The host it tried to reach.
        to: String,
    },
    /// A process on the target host could reach a host the parent's may
    /// not: a spawn never widens what a tenant's code reaches.
    #[error(
        "spawn: host '{from}' may not start processes on host '{to}': they could reach \
         host '{beyond}', which '{from}' may not (allow_hosts)"
    )]
    Widens {
        /// The parent's host.
        from: String,
        /// The host it tried to spawn on.
        to: String,
        /// A host the target reaches and the parent's does not.
        beyond: String,
    },
    /// The entry is of a kind this way of starting it cannot run.
    #[error("entry '{entry}' is a {kind} entry: {how}")]
    WrongKind {
        /// The entry id.
        entry: String,
        /// Its kind.
        kind: &'static str,
        /// How it can be started instead.
        how: &'static str,
    },
    /// An argument no front-end can hold (a NaN map key, too deep); the
    /// text names the place.
    #[error("{0}")]
    Unholdable(String),
    /// The spawner's host has no room in its `memory_total` to hold the
    /// arguments while they wait for the child to start.
    #[error(
        "host '{host}' has no room left in its memory_total ({total} bytes) for spawn arguments of {bytes} bytes"
    )]
    NoRoom {
        /// The spawner's host.
        host: String,
        /// Its `memory_total`.
        total: u64,
        /// The arguments' size.
        bytes: u64,
    },
    /// The arguments are larger than `max_message_bytes`.
    #[error("{}", too_large(what, *bytes, *limit))]
    TooLarge {
        /// What was too large (`spawn arguments`).
        what: &'static str,
        /// Their size, as counted by [`wire_size`](crate::limits::wire_size).
        bytes: usize,
        /// The limit.
        limit: usize,
    },
}

/// The message of a refused cross-host operation.
pub fn refused(op: &str, from: &str, to: &str) -> String {
    format!("{op} to host '{to}' is not allowed: host '{from}' lists only its allow_hosts")
}

/// The message of a payload over `max_message_bytes`.
pub fn too_large(what: &str, bytes: usize, limit: usize) -> String {
    format!("{what} of {bytes} bytes exceed max_message_bytes ({limit})")
}

/// [`too_large`] for one value (`what` singular: "a result").
pub fn one_too_large(what: &str, bytes: usize, limit: usize) -> String {
    format!("{what} of {bytes} bytes exceeds max_message_bytes ({limit})")
}

impl From<SpawnError> for ProcError {
    fn from(err: SpawnError) -> Self {
        let kind = match err {
            SpawnError::ShuttingDown => ErrorKind::Unavailable,
            SpawnError::TooManyProcesses { .. } | SpawnError::NoRoom { .. } => {
                ErrorKind::RateLimited
            }
            SpawnError::NotAllowed { .. } | SpawnError::Widens { .. } => {
                ErrorKind::PermissionDenied
            }
            SpawnError::TooLarge { .. }
            | SpawnError::Unholdable(_)
            | SpawnError::WrongKind { .. } => ErrorKind::Invalid,
            _ => ErrorKind::NotFound,
        };
        let mut out = ProcError::new(kind, err.to_string());
        out.retryable = kind == ErrorKind::RateLimited;
        out
    }
}
