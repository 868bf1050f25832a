//! The type IR (typed-lua.md §3.4): what a chunk's type declarations mean,
//! with names resolved at translate time. Shared, immutable (`Arc`) nodes;
//! a named type refers to its declaration by [`DeclId`] so recursive and
//! mutually recursive types are finite. The run-time half (type values
//! and validation) lives in the Lua front-end and reads only this.

use std::sync::Arc;

/// A shared type node.
pub type TyRef = Arc<Ty>;

/// A declaration's index in its [`TypeTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeclId(pub u32);

/// A literal type: `"a"`, `3`, `1.5`, `true`.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// A string literal (its bytes, escapes decoded).
    Str(Vec<u8>),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
}

/// A field of a record or interface.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Its name.
    pub name: String,
    /// Its type (without the `?` of an optional field).
    pub ty: TyRef,
    /// Declared with `?:`.
    pub optional: bool,
}

/// A parameter of a function type.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Its name, when written (`(x: number) -> ...`).
    pub name: Option<String>,
    /// Its type.
    pub ty: TyRef,
}

/// A generic parameter `T` or `T: Bound`.
#[derive(Debug, Clone, PartialEq)]
pub struct TyParam {
    /// Its name.
    pub name: String,
    /// Its bound, if any.
    pub bound: Option<TyRef>,
}

/// An argument of a validator (`@min(0)`, `@pattern("^a")`).
#[derive(Debug, Clone, PartialEq)]
pub enum ValidatorArg {
    /// A number (integers are kept exact).
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// Anything else (a name, a table...): ignored at run time.
    Other,
}

/// A validator attached to a type: `@name` or `@name(args)`.
#[derive(Debug, Clone)]
pub struct Validator {
    /// Its name (`min`, `max`, `min_len`, `max_len`, `pattern`, or unknown).
    pub name: String,
    /// Its arguments.
    pub args: Vec<ValidatorArg>,
    /// For `pattern`: the compiled regex, or `None` if it did not compile.
    /// It matches bytes, so a string that is not UTF-8 is matched as it
    /// is, with no copy, and a long match can be stopped
    /// ([`crate::Pattern`]).
    pub regex: Option<Arc<crate::Pattern>>,
}

impl PartialEq for Validator {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.args == other.args
    }
}

/// A type.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    /// `nil`.
    Nil,
    /// `boolean`.
    Boolean,
    /// `number`.
    Number,
    /// `integer`.
    Integer,
    /// `string`.
    String,
    /// `any`.
    Any,
    /// `unknown`.
    Unknown,
    /// `never`.
    Never,
    /// The built-in `table`: any table.
    Table,
    /// The built-in `error`: an `errors` object or a string.
    Error,
    /// A literal type.
    Lit(Lit),
    /// `T?`.
    Optional(TyRef),
    /// `A | B | ...`.
    Union(Vec<TyRef>),
    /// `A & B & ...`.
    Inter(Vec<TyRef>),
    /// `{T}` or `T[]`.
    Array {
        /// The element type.
        elem: TyRef,
        /// Declared `readonly`.
        readonly: bool,
    },
    /// `{[K]: V}`.
    Map {
        /// The key type.
        key: TyRef,
        /// The value type.
        val: TyRef,
        /// Declared `readonly`.
        readonly: bool,
    },
    /// `{a: T, b?: U}` (also the empty record `{}`).
    Record {
        /// Fields in declaration order.
        fields: Vec<Field>,
        /// Declared `readonly`.
        readonly: bool,
    },
    /// An `interface` declaration or `interface {...}`.
    Interface {
        /// Its fields and methods (methods as function-typed fields).
        fields: Vec<Field>,
    },
    /// A function type.
    Func {
        /// Its parameters.
        params: Vec<Param>,
        /// The type of `...`, when variadic.
        variadic: Option<TyRef>,
        /// Its return types.
        rets: Vec<TyRef>,
    },
    /// A reference to a declared type (resolved through the table, lazily,
    /// so recursion is finite).
    Named {
        /// The name as written.
        name: String,
        /// Its declaration.
        decl: DeclId,
    },
    /// A generic declaration's body with its parameters.
    Generic {
        /// The parameters.
        params: Vec<TyParam>,
        /// The body, in which [`Ty::TParam`] refers to the parameters.
        body: TyRef,
    },
    /// Generic parameter number `n` of the enclosing [`Ty::Generic`].
    TParam(usize),
    /// A generic declaration applied to arguments: `Box<number>`.
    Inst {
        /// The generic declaration.
        base: DeclId,
        /// The arguments.
        args: Vec<TyRef>,
    },
    /// A type with validators: `number @min(0)`.
    Annotated {
        /// The type validated first.
        inner: TyRef,
        /// Then each validator, in order.
        validators: Vec<Validator>,
    },
    /// A type Warren cannot see (`time.Time`): validates as `any`.
    Opaque(String),
}

impl Ty {
    /// Whether this mentions a parameter of an enclosing generic ([`Ty::TParam`];
    /// a nested generic's parameters are its own).
    pub fn has_tparam(&self) -> bool {
        match self {
            Ty::TParam(_) => true,
            Ty::Optional(t) => t.has_tparam(),
            Ty::Union(ts) | Ty::Inter(ts) | Ty::Inst { args: ts, .. } => {
                ts.iter().any(|t| t.has_tparam())
            }
            Ty::Array { elem, .. } => elem.has_tparam(),
            Ty::Map { key, val, .. } => key.has_tparam() || val.has_tparam(),
            Ty::Record { fields, .. } | Ty::Interface { fields } => {
                fields.iter().any(|f| f.ty.has_tparam())
            }
            Ty::Func {
                params,
                variadic,
                rets,
            } => {
                params.iter().any(|p| p.ty.has_tparam())
                    || variadic.as_ref().is_some_and(|t| t.has_tparam())
                    || rets.iter().any(|t| t.has_tparam())
            }
            Ty::Annotated { inner, .. } => inner.has_tparam(),
            _ => false,
        }
    }
}

/// A declared type.
#[derive(Debug, Clone, PartialEq)]
pub struct Decl {
    /// Its name.
    pub name: String,
    /// What it means ([`Ty::Generic`] for a generic declaration).
    pub ty: TyRef,
    /// Declared at the chunk's top level (those have run-time values).
    pub top_level: bool,
}

/// Every type declaration of a chunk, nested ones included.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypeTable {
    /// The declarations; a [`DeclId`] indexes this.
    pub decls: Vec<Decl>,
}

impl TypeTable {
    /// The declaration `id`, if it exists.
    pub fn get(&self, id: DeclId) -> Option<&Decl> {
        self.decls.get(usize::try_from(id.0).ok()?)
    }

    /// The top-level declarations, in declaration order.
    pub fn top_level(&self) -> impl Iterator<Item = (DeclId, &Decl)> {
        self.decls
            .iter()
            .enumerate()
            .filter(|(_, d)| d.top_level)
            .map(|(i, d)| (DeclId(u32::try_from(i).unwrap_or(u32::MAX)), d))
    }
}
