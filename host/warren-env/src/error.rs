//! What is wrong with a set of storage and variable definitions: each
//! problem names the entry at fault and the key ([`EnvError::key`]), so a
//! configuration loader can report it where it was written.

/// A problem in the definitions given to [`crate::Env::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvError {
    /// An entry id is empty, has no `:`, or holds a control character.
    BadId {
        /// The id as given.
        entry: String,
    },
    /// Two storages or two variables share an id.
    DuplicateId {
        /// The id.
        entry: String,
    },
    /// A public name is not `[A-Za-z0-9_]+`.
    BadName {
        /// The variable's entry id.
        entry: String,
        /// The name as given.
        name: String,
    },
    /// A variable names a storage that is not declared.
    UnknownStorage {
        /// The variable's entry id.
        entry: String,
        /// The storage id it names.
        storage: String,
    },
    /// A router names a storage that is not declared.
    UnknownRouterStorage {
        /// The router's entry id.
        entry: String,
        /// The storage id it names.
        storage: String,
    },
    /// A router names no storage.
    EmptyRouter {
        /// The router's entry id.
        entry: String,
    },
    /// Routers that reach themselves.
    RouterCycle {
        /// The first router of the cycle.
        entry: String,
        /// The ids along the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
    /// A static storage holds a value a variable could never be set to.
    BadStaticValue {
        /// The storage's entry id.
        entry: String,
        /// The key of the value.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// Two variables claim one public name: the first loaded keeps it (a
    /// warning, not an error).
    SharedName {
        /// The later variable's entry id.
        entry: String,
        /// The public name.
        name: String,
        /// The variable that keeps it.
        first: String,
    },
}

impl EnvError {
    /// The entry at fault.
    pub fn entry(&self) -> &str {
        match self {
            EnvError::BadId { entry }
            | EnvError::DuplicateId { entry }
            | EnvError::BadName { entry, .. }
            | EnvError::UnknownStorage { entry, .. }
            | EnvError::UnknownRouterStorage { entry, .. }
            | EnvError::EmptyRouter { entry }
            | EnvError::RouterCycle { entry, .. }
            | EnvError::BadStaticValue { entry, .. }
            | EnvError::SharedName { entry, .. } => entry,
        }
    }

    /// The key at fault (`name` for the id itself).
    pub fn key(&self) -> String {
        match self {
            EnvError::BadId { .. } | EnvError::DuplicateId { .. } => "name".into(),
            EnvError::BadName { .. } | EnvError::SharedName { .. } => "variable".into(),
            EnvError::UnknownStorage { .. } => "storage".into(),
            EnvError::UnknownRouterStorage { .. }
            | EnvError::EmptyRouter { .. }
            | EnvError::RouterCycle { .. } => "storages".into(),
            EnvError::BadStaticValue { key, .. } => format!("values.{key}"),
        }
    }

    /// What is wrong, without the entry and the key.
    pub fn reason(&self) -> String {
        match self {
            EnvError::BadId { .. } => "not an entry id (expected <namespace>:<name>)".into(),
            EnvError::DuplicateId { .. } => "declared twice".into(),
            EnvError::BadName { name, .. } => {
                format!("{name:?} is not a public name (letters, digits and '_')")
            }
            EnvError::UnknownStorage { storage, .. }
            | EnvError::UnknownRouterStorage { storage, .. } => {
                format!("'{storage}' is not an env.storage.* entry")
            }
            EnvError::EmptyRouter { .. } => "a router needs at least one storage".into(),
            EnvError::RouterCycle { cycle, .. } => {
                format!("router cycle: {}", cycle.join(" -> "))
            }
            EnvError::BadStaticValue { reason, .. } => reason.clone(),
            EnvError::SharedName { name, first, .. } => format!(
                "public name '{name}' is already claimed by '{first}' (loaded first); \
                 this variable is reachable by its id only"
            ),
        }
    }
}

impl std::fmt::Display for EnvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (entry, key, reason) = (self.entry(), self.key(), self.reason());
        write!(f, "entry '{entry}': key '{key}': {reason}")
    }
}

impl std::error::Error for EnvError {}
