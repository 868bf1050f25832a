//! Diagnostics: the one error type of the front-end and its codes.
//!
//! Parse errors follow `luac`'s wording where plain Lua 5.4 rejects the same
//! text (`unexpected symbol near '='`), and say `expected <what>, found
//! <token>` for errors inside type syntax.

/// Syntax: anything outside the grammar.
pub const SYNTAX: &str = "P0001";
/// Block or expression nesting deeper than [`crate::MAX_NESTING`].
pub const NESTING: &str = "P0002";
/// Source larger than [`crate::MAX_SOURCE_BYTES`].
pub const TOO_BIG: &str = "P0003";
/// Use of the reserved identifier `__warren_types`.
pub const RESERVED: &str = "P0004";

/// Unknown type name.
pub const T_UNKNOWN: &str = "T001";
/// Duplicate type name in one block.
pub const T_DUPLICATE: &str = "T002";
/// Generic arity.
pub const T_ARITY: &str = "T003";
/// Validator: bad argument, invalid regex (errors) or unknown name (warning).
pub const T_VALIDATOR: &str = "T004";
/// Validator on a type where it is dropped.
pub const T_DROPPED: &str = "T005";
/// A global is assigned that has the name of a top-level type.
pub const T_GLOBAL: &str = "T006";
/// Run-time use of a type not declared at the chunk's top level.
pub const T_NESTED: &str = "T007";
/// A qualified (module) type Warren cannot see.
pub const T_MODULE: &str = "T050";
/// `typeof(e)` Warren cannot resolve.
pub const T_TYPEOF: &str = "T051";
/// Type too large or too deeply instantiated.
pub const T_LIMIT: &str = "T060";

/// How serious a diagnostic is. P codes are always errors; T codes follow
/// typed-lua.md §3.6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// An error (a P code refuses the chunk; a T error only in strict mode).
    Error,
    /// A warning.
    Warning,
    /// A hint.
    Hint,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Hint => "hint",
        })
    }
}

/// A diagnostic. Syntax errors (returned as `Err` by [`crate::translate`]):
/// "P0001" (syntax), "P0002" (nesting over 200), "P0003" (source over
/// 16 MiB), "P0004" (use of the reserved name `__warren_types`). Type
/// diagnostics ("T001"…, in [`crate::Translation::diagnostics`]) never stop
/// the translation. Line and column are 1-based; the column counts bytes of
/// the original source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message} [{code}]")]
pub struct Diagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl Diagnostic {
    /// An error.
    pub(crate) fn new(code: &'static str, line: u32, column: u32, message: String) -> Self {
        Self {
            code,
            severity: Severity::Error,
            line,
            column,
            message,
        }
    }

    /// A diagnostic of the given severity.
    pub(crate) fn with(
        code: &'static str,
        severity: Severity,
        line: u32,
        column: u32,
        message: String,
    ) -> Self {
        Self {
            code,
            severity,
            line,
            column,
            message,
        }
    }
}

/// At most this many bytes of a token are quoted in a message.
const QUOTE_MAX: usize = 40;

/// `'text'` as Lua quotes a token after "near", cut at a char boundary.
pub(crate) fn quote(text: &str) -> String {
    let mut end = text.len().min(QUOTE_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.get(..end).unwrap_or("");
    let dots = if end < text.len() { "..." } else { "" };
    format!("'{cut}{dots}'")
}
