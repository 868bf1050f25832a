//! Wippy's typed Lua dialect for Warren (`docs` contract: typed-lua.md).
//!
//! [`translate`] parses a chunk of Lua 5.4 extended with Wippy's type
//! syntax (annotations, `type`/`interface` declarations, casts `as`/`::`,
//! `!`, generics) and erases the type syntax in place. The result is plain
//! Lua 5.4 with the same lines: byte for byte the source, except that the
//! type syntax is blanked with spaces (newlines kept) and `;` marks erased
//! statements and casts followed by `(`. Errors are [`Diagnostic`]s with
//! the original line and column.
//!
//! Along the way it resolves the chunk's type declarations into IR
//! ([`Translation::types`], §3.4), collects type diagnostics (T codes,
//! never fatal: [`Translation::diagnostics`]) and rewrites the reads of
//! types used as run-time values to `__warren_types.N` (§3.3 rule 4).
//! Phase C's value checks (T010–T016, §3.6) run on what the parser
//! recorded about constants, locals, calls and returns; they report only
//! what definitely breaks an annotation. [`Diagnostic::render`] and
//! [`Diagnostic::short`] give §3.7's human and one-line forms.
//!
//! The front-end is bounded: nesting is capped at [`MAX_NESTING`], input at
//! [`MAX_SOURCE_BYTES`], IR at [`MAX_IR_NODES`], and it never panics.

mod check;
mod cycles;
mod diag;
mod emit;
mod facts;
mod lexer;
mod lit;
mod parser;
mod pattern;
mod resolve;
mod scope;
mod syn;
pub mod ty;
mod typesyn;

pub use diag::{Diagnostic, Severity};
pub use pattern::{POLL_BYTES, Pattern, PatternError, Unanswered};
pub use resolve::{
    MAX_INSTANTIATION_DEPTH, MAX_IR_NODES, MAX_PATTERNS, TYPE_METHODS, compile_pattern,
};
pub use ty::TypeTable;

/// Deepest nesting of statements, expressions and types (P0002 beyond).
pub const MAX_NESTING: usize = 200;
/// Largest accepted source (P0003 beyond).
pub const MAX_SOURCE_BYTES: usize = 16 << 20;
/// Most `type`/`interface` declarations in one chunk (P0005 beyond): each
/// is checked against its block's names, so tens of thousands would hold
/// the worker for seconds in one translation (real chunks declare dozens).
pub const MAX_TYPE_DECLS: usize = 2048;

/// A translated chunk: plain Lua 5.4 with the same lines as the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    /// The Lua text (no chunk prefix: the caller adds `local _ENV = ...; `,
    /// or `local _ENV, __warren_types = ...; ` when [`needs_types`]).
    ///
    /// [`needs_types`]: Translation::needs_types
    pub lua: String,
    /// Whether the chunk reads types as run-time values (`__warren_types.T`).
    pub needs_types: bool,
    /// The chunk's type declarations, nested ones included, in
    /// declaration order ([`ty::Decl::top_level`] marks the chunk-level
    /// ones, which have run-time values).
    pub types: std::sync::Arc<TypeTable>,
    /// Type diagnostics (T001–T008, T010–T016, T050, T051, T060), by
    /// position. They never stop the translation.
    pub diagnostics: Vec<Diagnostic>,
}

/// What the parser found to erase.
#[derive(Debug, Default)]
pub(crate) struct Erasure {
    /// Byte ranges to blank (may nest).
    pub spans: Vec<(usize, usize)>,
    /// Offsets that get a `;`.
    pub semis: Vec<usize>,
}

/// Translates a typed chunk to plain Lua 5.4 with the same lines.
pub fn translate(source: &str) -> Result<Translation, Diagnostic> {
    if source.len() > MAX_SOURCE_BYTES {
        let mut d = Diagnostic::new(
            diag::TOO_BIG,
            1,
            1,
            format!(
                "source too large ({} bytes; limit is {MAX_SOURCE_BYTES})",
                source.len()
            ),
        );
        (d.end_line, d.end_column) = (1, 1);
        return Err(d);
    }
    let mut p = parser::Parser::new(source);
    if let Err(mut e) = p.chunk() {
        diag::fill_ends(std::slice::from_mut(&mut e), source);
        return Err(e);
    }
    let mut resolved = resolve::run(&mut p);
    diag::fill_ends(&mut resolved.diags, source);
    let (lua, needs_types) = emit::erase(source, p.out, &resolved.inserts);
    Ok(Translation {
        lua,
        needs_types,
        types: std::sync::Arc::new(resolved.types),
        diagnostics: resolved.diags,
    })
}
