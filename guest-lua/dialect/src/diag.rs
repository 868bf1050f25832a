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
/// More type declarations in one chunk than [`crate::MAX_TYPE_DECLS`].
pub const TOO_MANY_TYPES: &str = "P0005";

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
/// An alias defined through itself with no structure in between
/// (`type T = T`): checks against it recurse to the depth limit.
pub const T_CYCLE: &str = "T008";
/// A constant definitely not assignable to its annotation.
pub const T_MISMATCH: &str = "T010";
/// Literal `nil` to a non-optional annotation (error); an annotated local
/// without a value (warning).
pub const T_NIL: &str = "T011";
/// Wrong number of arguments to a local typed function.
pub const T_ARGS: &str = "T012";
/// Declared returns, but no `return` with values and no `error(...)`.
pub const T_NO_RETURN: &str = "T013";
/// A field a declared record type does not have.
pub const T_NO_FIELD: &str = "T014";
/// Calling a local annotated `number`, `string` or `boolean`.
pub const T_NOT_CALLABLE: &str = "T015";
/// Arithmetic on a boolean, `nil` or non-numeric string literal.
pub const T_ARITH: &str = "T016";
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
/// the original source. `end_line`/`end_column` are the last byte of the
/// offending span (inclusive; the same as `line`/`column` for a one-byte
/// span or when only the start is known).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message} [{code}]")]
pub struct Diagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub line: u32,
    pub column: u32,
    pub message: String,
    /// Line of the span's last byte (1-based).
    pub end_line: u32,
    /// Byte column of the span's last byte (1-based, inclusive).
    pub end_column: u32,
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
            end_line: 0,
            end_column: 0,
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
            end_line: 0,
            end_column: 0,
        }
    }

    /// `error[T001]: message` (the first line of the human form).
    fn headline(&self) -> String {
        format!("{}[{}]: {}", self.severity, self.code, self.message)
    }

    /// The one-line form (typed-lua.md §3.7, `--format=short`):
    /// `file:1:21: error[T001]: unknown type `Strng``.
    pub fn short(&self, file: &str) -> String {
        format!("{file}:{}:{}: {}", self.line, self.column, self.headline())
    }

    /// The human form (typed-lua.md §3.7): the headline, the position, and
    /// the source line with carets under the span (to the end of the line
    /// when the span goes on). `source` is the original source of `file`.
    /// No trailing newline.
    ///
    /// ```text
    /// error[T001]: unknown type `Strng`
    ///  --> app/src/f.lua:1:21
    ///   |
    /// 1 | local function f(x: Strng): number return 1 end
    ///   |                     ^^^^^
    /// ```
    pub fn render(&self, file: &str, source: &str) -> String {
        let num = self.line.to_string();
        let pad = " ".repeat(num.len());
        let mut out = format!(
            "{}\n{pad}--> {file}:{}:{}",
            self.headline(),
            self.line,
            self.column
        );
        let lines = Lines::new(source);
        let Some(text) = lines.text(self.line) else {
            return out;
        };
        let mut start = (self.column.max(1) as usize - 1).min(text.len());
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = if self.end_line == self.line && self.end_column >= self.column {
            (self.end_column as usize).min(text.len())
        } else if self.end_line > self.line {
            text.len()
        } else {
            start + 1
        };
        end = end.clamp(start, text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        let (lo, hi) = excerpt(text, start);
        let end = end.min(hi);
        let (before, after) = (
            if lo > 0 { "…" } else { "" },
            if hi < text.len() { "…" } else { "" },
        );
        let prefix: String = before
            .chars()
            .chain(text.get(lo..start).unwrap_or("").chars())
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let carets = "^".repeat(text.get(start..end).map_or(0, |s| s.chars().count()).max(1));
        let shown = text.get(lo..hi).unwrap_or("");
        out.push_str(&format!(
            "\n{pad} |\n{num} | {before}{shown}{after}\n{pad} | {prefix}{carets}"
        ));
        out
    }
}

/// Most bytes of a source line a rendered diagnostic shows. A line longer
/// than this is cut around the span (marked `…`): a one-line source of
/// thousands of diagnostics printed the whole line with each, gigabytes
/// of output for a few hundred kilobytes of source.
pub const MAX_EXCERPT_BYTES: usize = 240;

/// Bytes shown before the span's start on a cut line.
const EXCERPT_BEFORE: usize = 80;

/// The byte range of `text` (char boundaries) a diagnostic whose span
/// starts at `start` shows: all of it when short, else at most
/// [`MAX_EXCERPT_BYTES`] from [`EXCERPT_BEFORE`] before the span (so the
/// span's start is always shown).
fn excerpt(text: &str, start: usize) -> (usize, usize) {
    if text.len() <= MAX_EXCERPT_BYTES {
        return (0, text.len());
    }
    let mut lo = start.saturating_sub(EXCERPT_BEFORE);
    while !text.is_char_boundary(lo) {
        lo -= 1;
    }
    let mut hi = (lo + MAX_EXCERPT_BYTES).min(text.len());
    while !text.is_char_boundary(hi) {
        hi -= 1;
    }
    (lo, hi)
}

/// Where the lines of a source start, split as Lua splits them (`\n`,
/// `\r`, `\r\n`, `\n\r`), to turn byte offsets into positions and back.
pub(crate) struct Lines<'s> {
    src: &'s str,
    /// (start, end) of each line's text, without its line break.
    lines: Vec<(usize, usize)>,
}

impl<'s> Lines<'s> {
    pub(crate) fn new(src: &'s str) -> Self {
        let b = src.as_bytes();
        let mut lines = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c == b'\n' || c == b'\r' {
                lines.push((start, i));
                if let Some(&d) = b.get(i + 1)
                    && (d == b'\n' || d == b'\r')
                    && d != c
                {
                    i += 1;
                }
                start = i + 1;
            }
            i += 1;
        }
        lines.push((start, b.len()));
        Self { src, lines }
    }

    /// The text of 1-based line `line`, without its line break.
    pub(crate) fn text(&self, line: u32) -> Option<&'s str> {
        let &(s, e) = self.lines.get((line as usize).checked_sub(1)?)?;
        self.src.get(s..e)
    }

    /// The 1-based line and byte column of byte offset `off`.
    pub(crate) fn pos(&self, off: usize) -> (u32, u32) {
        let i = self
            .lines
            .partition_point(|&(s, _)| s <= off)
            .saturating_sub(1);
        let start = self.lines.get(i).map_or(0, |l| l.0);
        let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let col = u32::try_from(off.saturating_sub(start) + 1).unwrap_or(u32::MAX);
        (line, col)
    }

    /// The byte offset of 1-based `line`, `column`.
    pub(crate) fn offset(&self, line: u32, column: u32) -> Option<usize> {
        let &(s, _) = self.lines.get((line as usize).checked_sub(1)?)?;
        Some(s + (column as usize).checked_sub(1)?)
    }

    /// The position of the last byte of `start..end` (of `start` when empty).
    pub(crate) fn end_pos(&self, start: usize, end: usize) -> (u32, u32) {
        self.pos(end.saturating_sub(1).max(start))
    }
}

/// Fills the end of each diagnostic that has none: the end of the token at
/// its position (or the position itself).
pub(crate) fn fill_ends(diags: &mut [Diagnostic], src: &str) {
    if diags.iter().all(|d| d.end_line != 0) {
        return;
    }
    let lines = Lines::new(src);
    for d in diags.iter_mut().filter(|d| d.end_line == 0) {
        (d.end_line, d.end_column) = (d.line, d.column);
        let Some(off) = lines.offset(d.line, d.column) else {
            continue;
        };
        let Some(rest) = src.get(off..) else {
            continue;
        };
        let t = crate::lexer::Lexer::new(rest).peek(0);
        if t.start == 0 && t.end > 0 {
            (d.end_line, d.end_column) = lines.end_pos(off, off + t.end);
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
