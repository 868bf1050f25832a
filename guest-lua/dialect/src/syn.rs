//! What the parser records about types and names, before resolution
//! (§3.4): type expressions as written (an arena of [`Syn`] nodes whose
//! names are not yet resolved, because declarations are hoisted), the type
//! scopes of blocks and generic declarations, the declarations, and the
//! value-position reads of global names that may become run-time type
//! references (§3.3 rule 4). [`crate::resolve`] turns these into IR,
//! diagnostics and rewrites once the whole chunk is read.

use crate::ty::{Lit, Ty, ValidatorArg};

/// Index of a node in the parser's arena.
pub(crate) type SynId = u32;

/// A type scope's index; scope 0 is the chunk's main block.
pub(crate) type ScopeId = u32;

/// No parent scope.
pub(crate) const NO_SCOPE: ScopeId = u32::MAX;

/// A source position (1-based line, 1-based byte column).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: u32,
    pub col: u32,
}

/// A field of a record or interface, as written.
#[derive(Debug)]
pub(crate) struct SynField<'a> {
    pub name: &'a str,
    pub ty: SynId,
    pub optional: bool,
}

/// A parameter of a function type, as written.
#[derive(Debug)]
pub(crate) struct SynParam<'a> {
    pub name: Option<&'a str>,
    pub ty: SynId,
}

/// `@name(args)` as written.
#[derive(Debug)]
pub(crate) struct SynValidator<'a> {
    pub name: &'a str,
    /// The `@`.
    pub at: Pos,
    pub args: Vec<(ValidatorArg, Pos)>,
}

/// A type expression node.
#[derive(Debug)]
pub(crate) enum Syn<'a> {
    /// A type known without resolution (`nil`, literals, `asserts`: any).
    Leaf(Ty),
    /// A literal.
    Lit(Lit),
    /// `Name`, `a.b` (qualified) or `Name<args>`.
    Name {
        name: &'a str,
        qualified: bool,
        args: Option<Vec<SynId>>,
        scope: ScopeId,
        pos: Pos,
    },
    Optional(SynId),
    Union(Vec<SynId>),
    Inter(Vec<SynId>),
    Array {
        elem: SynId,
        readonly: bool,
    },
    Map {
        key: SynId,
        val: SynId,
        readonly: bool,
    },
    Record {
        fields: Vec<SynField<'a>>,
        readonly: bool,
    },
    Interface {
        fields: Vec<SynField<'a>>,
    },
    Func {
        params: Vec<SynParam<'a>>,
        variadic: Option<SynId>,
        rets: Vec<SynId>,
    },
    /// A parenthesised list of types (return positions): `(A, B)`, `()`.
    Tuple(Vec<SynId>),
    Annotated {
        inner: SynId,
        validators: Vec<SynValidator<'a>>,
    },
    /// `typeof(x)` with `x` an annotated local: that annotation.
    TypeofAnnot(SynId),
    /// `typeof(e)` Warren cannot resolve (T051).
    TypeofUnknown(Pos),
    Keyof(SynId, Pos),
    /// `T[K]`.
    Index(SynId, SynId, Pos),
    /// `A extends B ? X : Y`.
    Cond {
        a: SynId,
        b: SynId,
        x: SynId,
        y: SynId,
        pos: Pos,
    },
    /// `asserts x [is T]`: any (the type is only checked for names).
    Asserts(Option<SynId>),
}

/// What a name means in a type scope.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Binding {
    /// A `type`/`interface` declaration.
    Decl(u32),
    /// Parameter `n` of the generic declaration being read.
    TParam(u32),
    /// A generic parameter of a function (annotations only): any.
    FuncTParam,
}

/// A type scope: a block, or a generic declaration's parameters.
#[derive(Debug)]
pub(crate) struct TScope<'a> {
    pub parent: ScopeId,
    pub binds: Vec<(&'a str, Binding)>,
}

/// The body of a declaration.
#[derive(Debug)]
pub(crate) enum DeclBody<'a> {
    /// `type Name = T`.
    Type(SynId),
    /// `interface Name : Bases ... end`.
    Interface {
        bases: Vec<SynId>,
        fields: Vec<SynField<'a>>,
    },
}

/// A `type` or `interface` declaration.
#[derive(Debug)]
pub(crate) struct DeclSyn<'a> {
    pub name: &'a str,
    pub pos: Pos,
    /// Generic parameters (name, bound).
    pub tparams: Option<Vec<(&'a str, Option<SynId>)>>,
    pub body: DeclBody<'a>,
    /// Declared in the chunk's main block.
    pub top_level: bool,
}

/// How a global name is used where it is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Usage<'a> {
    /// A bare read (also `N[k]`).
    Bare,
    /// A callee: `N(...)`, `N"s"`, `N{...}`.
    Call,
    /// A method receiver: `N:m(...)`.
    Method,
    /// `N.m`.
    Field(&'a str),
    /// The prefix of a function statement's name: `function N.m()`.
    FuncName,
    /// Assigned: `N = v`, `function N()`.
    Assign,
}

/// A global name (not a local, upvalue or parameter) in value position.
#[derive(Debug)]
pub(crate) struct Ref<'a> {
    /// Byte offset of the name.
    pub at: usize,
    pub pos: Pos,
    pub name: &'a str,
    pub usage: Usage<'a>,
    /// The type scope there.
    pub scope: ScopeId,
}
