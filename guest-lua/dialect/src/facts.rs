//! What the parser records for phase C's value checks (typed-lua.md §3.6,
//! T010–T016): a summary of each expression that matters (constants,
//! table constructors, function expressions), the locals with their
//! annotations and whether they are reassigned, the functions with their
//! parameter and return annotations, and the places to check (annotated
//! locals' values, returns, calls and field reads of locals). Spans are
//! byte offsets into the source; [`crate::check`] turns them into
//! diagnostics once names are resolved.

use crate::syn::SynId;

/// No function / local / table.
pub(crate) const NONE: u32 = u32::MAX;

/// What an expression is, as far as the checks care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Val {
    /// `nil`.
    Nil,
    /// `true`.
    True,
    /// `false`.
    False,
    /// A numeral (its text is the span).
    Num,
    /// A string literal (its text is the span).
    Str,
    /// A table constructor: index into [`Facts::tables`].
    Table(u32),
    /// A `function` expression: index into [`Facts::funcs`].
    Func(u32),
    /// A call or `...`: any number of values.
    Multi,
    /// Anything else.
    Other,
}

/// An expression's summary and byte span (`start..end`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ex {
    pub val: Val,
    pub start: usize,
    pub end: usize,
}

impl Ex {
    pub(crate) fn new(val: Val, start: usize, end: usize) -> Self {
        Self { val, start, end }
    }

    /// Whether it may give any number of values (a trailing call or `...`).
    pub(crate) fn is_multi(&self) -> bool {
        self.val == Val::Multi
    }
}

/// The key of a table-constructor entry.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Key<'a> {
    /// `name = v`.
    Name(&'a str),
    /// The `n`-th positional entry (1-based).
    Pos(u32),
    /// `[k] = v`.
    Expr(Ex),
}

/// An entry of a table constructor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry<'a> {
    pub key: Key<'a>,
    pub val: Ex,
}

/// A function body.
#[derive(Debug)]
pub(crate) struct FnFacts {
    /// Span of its name (`local function f`, `function M.f`), or of the
    /// `function` keyword when anonymous.
    pub name: (usize, usize),
    /// Each named parameter's annotation.
    pub params: Vec<Option<SynId>>,
    pub vararg: bool,
    /// The declared return types (`None`: no return annotation).
    pub rets: Option<Vec<SynId>>,
    /// Some `return` in the body gives values.
    pub returns_value: bool,
    /// The body (or a function nested in it) calls the global `error`.
    pub calls_error: bool,
    /// Not inside erased type syntax.
    pub live: bool,
}

/// A local variable (or parameter).
#[derive(Debug)]
pub(crate) struct LocalFacts<'a> {
    pub name: &'a str,
    pub annot: Option<SynId>,
    /// The function it is bound to (`local function f`, or `local f =
    /// function ...`), or [`NONE`].
    pub func: u32,
    /// Assigned anywhere after its declaration.
    pub reassigned: bool,
}

/// A place to check.
#[derive(Debug)]
pub(crate) enum Fact<'a> {
    /// An annotated local's value; `value` is `None` when it gets none.
    Init {
        annot: SynId,
        name: (usize, usize),
        local: u32,
        value: Option<Ex>,
    },
    /// `return values` inside function `func`.
    Return { func: u32, values: Vec<Ex> },
    /// `local(args)`: a call of a local by its name.
    Call {
        local: u32,
        args: Vec<Ex>,
        span: (usize, usize),
    },
    /// `local.name` read (not assigned).
    Field {
        local: u32,
        name: &'a str,
        span: (usize, usize),
        write: bool,
    },
}

/// A diagnostic decided while parsing (T016), with a byte span.
#[derive(Debug)]
pub(crate) struct Pending {
    pub code: &'static str,
    pub span: (usize, usize),
    pub message: String,
}

/// Everything recorded for the checks.
#[derive(Debug, Default)]
pub(crate) struct Facts<'a> {
    pub tables: Vec<Vec<Entry<'a>>>,
    pub funcs: Vec<FnFacts>,
    pub locals: Vec<LocalFacts<'a>>,
    pub facts: Vec<Fact<'a>>,
    pub pending: Vec<Pending>,
}

/// `n` as an index (saturating).
pub(crate) fn idx(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(NONE)
}
