//! Name resolution (§3.4), once the whole chunk is read: type expressions
//! become IR ([`Ty`]), declarations fill the [`TypeTable`], type
//! diagnostics (T001–T008, T050, T051, T060) are collected, and the reads
//! of global names that are run-time type references become rewrites
//! (§3.3 rule 4).
//!
//! Declarations are hoisted: every `type`/`interface` of a block is bound
//! while parsing, and names are looked up only here, so forward and
//! mutually recursive references work. A reference to a declaration is
//! [`Ty::Named`] (or [`Ty::Inst`] for a generic one), resolved lazily by
//! whoever reads the IR, so recursion stays finite.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::cycles;
use crate::diag::{self, Diagnostic, Severity};
use crate::parser::Parser;
use crate::syn::{
    Binding, DeclBody, DeclSyn, NO_SCOPE, Pos, Ref, ScopeId, Syn, SynField, SynId, SynValidator,
    TScope, Usage,
};
use crate::ty::{
    Decl, DeclId, Field, Lit, Param, Ty, TyParam, TyRef, TypeTable, Validator, ValidatorArg,
};

/// IR nodes built for declarations, per chunk (T060 beyond).
pub const MAX_IR_NODES: usize = 100_000;
/// Deepest chain of aliases and instantiations followed (T060 beyond).
pub const MAX_INSTANTIATION_DEPTH: usize = 64;
/// Size limit of a compiled `@pattern` regex.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Distinct `@pattern` regexes compiled per chunk (T015 beyond): each
/// compile may take up to a millisecond (`a{1000}{1000}` builds until
/// [`REGEX_SIZE_LIMIT`]), and 20,000 of them held a worker 13 s in one
/// `load`. The same text is compiled once per chunk.
pub const MAX_PATTERNS: usize = 256;

/// Deepest recursion over type syntax (a safety net: the parser's nesting
/// limit already bounds it).
const MAX_WALK: usize = 1_000;

/// Names that are type values only as a callee, a receiver or with a type
/// method (§3.4).
const PRIMITIVE_VALUES: &[&str] = &[
    "string", "integer", "number", "boolean", "any", "unknown", "never",
];

/// The methods of type values (`N.m` with one of these is a type use).
pub const TYPE_METHODS: &[&str] = &[
    "is", "kind", "name", "elem", "key", "val", "inner", "ret", "fields", "variants", "params",
    "tparams",
];

/// What resolution produces.
pub(crate) struct Resolved {
    pub types: TypeTable,
    pub diags: Vec<Diagnostic>,
    /// Byte offsets where `__warren_types.` goes, ascending.
    pub inserts: Vec<usize>,
}

/// Resolves what the parser recorded.
pub(crate) fn run(p: &mut Parser<'_>) -> Resolved {
    let mut r = Resolver {
        syn: &p.syn,
        scopes: &p.scopes,
        decls: &p.decls,
        out: vec![None; p.decls.len()],
        state: vec![State::Todo; p.decls.len()],
        diags: std::mem::take(&mut p.diags),
        seen_module: HashSet::new(),
        memo: HashMap::new(),
        typeof_targets: p
            .syn
            .iter()
            .filter_map(|n| match n {
                Syn::TypeofAnnot(a) => Some(*a),
                _ => None,
            })
            .collect(),
        prims: Default::default(),
        nodes: 0,
        counting: false,
        over: false,
        at: Pos::default(),
        walk: 0,
        any: Arc::new(Ty::Any),
        quiet: false,
        patterns: HashMap::new(),
    };
    for &root in &p.roots {
        r.root(root);
    }
    r.counting = true;
    for i in 0..p.decls.len() {
        r.decl(i);
    }
    r.cycles();
    let inserts = r.references(&p.refs);
    r.counting = false;
    r.quiet = true;
    let checks = crate::check::run(&mut r, &p.facts, p.lx.source());
    r.quiet = false;
    r.diags.extend(checks);
    let decls = p
        .decls
        .iter()
        .zip(r.out.iter())
        .map(|(d, t)| Decl {
            name: d.name.to_string(),
            ty: t.clone().unwrap_or_else(|| r.any.clone()),
            top_level: d.top_level,
        })
        .collect();
    let mut diags = r.diags;
    diags.sort_by_key(|d| (d.line, d.column));
    Resolved {
        types: TypeTable { decls },
        diags,
        inserts,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Todo,
    Busy,
    Done,
}

pub(crate) struct Resolver<'r, 'a> {
    syn: &'r [Syn<'a>],
    scopes: &'r [TScope<'a>],
    decls: &'r [DeclSyn<'a>],
    /// Each declaration's IR, once resolved.
    out: Vec<Option<TyRef>>,
    state: Vec<State>,
    diags: Vec<Diagnostic>,
    /// Qualified names already given T050.
    seen_module: HashSet<&'a str>,
    /// Resolved annotation roots that `typeof` reads.
    memo: HashMap<SynId, TyRef>,
    /// The roots `typeof` reads.
    typeof_targets: HashSet<SynId>,
    /// Shared nodes of the primitive types, by [`prim_index`].
    prims: [Option<TyRef>; 10],
    /// IR nodes built for declarations.
    nodes: usize,
    counting: bool,
    /// Past [`MAX_IR_NODES`]: everything further is `Any`.
    over: bool,
    /// Where a limit diagnostic is reported.
    at: Pos,
    /// Current recursion depth.
    walk: usize,
    any: TyRef,
    /// Diagnostics are dropped (the checks re-resolve annotations).
    quiet: bool,
    /// `@pattern` regexes compiled in this chunk, by text (or why not).
    patterns: HashMap<String, Result<Arc<crate::Pattern>, &'static str>>,
}

/// Where [`Resolver::prims`] keeps a primitive type.
fn prim_index(t: &Ty) -> Option<usize> {
    Some(match t {
        Ty::Nil => 0,
        Ty::Boolean => 1,
        Ty::Number => 2,
        Ty::Integer => 3,
        Ty::String => 4,
        Ty::Unknown => 5,
        Ty::Never => 6,
        Ty::Table => 7,
        Ty::Error => 8,
        Ty::Any => 9,
        _ => return None,
    })
}

fn primitive(name: &str) -> Option<Ty> {
    Some(match name {
        "boolean" => Ty::Boolean,
        "number" => Ty::Number,
        "integer" => Ty::Integer,
        "string" => Ty::String,
        "any" => Ty::Any,
        "unknown" => Ty::Unknown,
        "never" => Ty::Never,
        "table" => Ty::Table,
        "error" => Ty::Error,
        _ => return None,
    })
}

impl<'a> Resolver<'_, 'a> {
    fn diag(&mut self, code: &'static str, sev: Severity, at: Pos, message: String) {
        if self.quiet {
            return;
        }
        self.diags
            .push(Diagnostic::with(code, sev, at.line, at.col, message));
    }

    /// T008 on every declaration of an alias cycle with no structure in
    /// between ([`crate::cycles`]).
    fn cycles(&mut self) {
        for cycle in crate::cycles::on_cycles(&self.out) {
            let decls = self.decls;
            let mut names: Vec<String> = (cycle.iter().take(cycles::MAX_NAMED))
                .map(|&i| format!("`{}`", decls[i].name))
                .collect();
            if cycle.len() > cycles::MAX_NAMED {
                names.push(format!("and {} more", cycle.len() - cycles::MAX_NAMED));
            }
            let through = if cycle.len() > 1 {
                format!(" (a cycle of {})", names.join(", "))
            } else {
                String::new()
            };
            for &i in &cycle {
                let message = format!(
                    "type `{}` is defined through itself with no table or function type \
                     in between{through}: a check against it recurses to the depth limit",
                    decls[i].name
                );
                self.diag(diag::T_CYCLE, Severity::Warning, decls[i].pos, message);
            }
        }
    }

    /// A new IR node (counted for declarations).
    fn mk(&mut self, t: Ty) -> TyRef {
        if self.charge(1) {
            return self.any.clone();
        }
        Arc::new(t)
    }

    /// Counts `n` nodes' worth of work against the chunk's budget (for
    /// declarations): true once it is spent, and the work is not done.
    fn charge(&mut self, n: usize) -> bool {
        if self.counting {
            self.nodes = self.nodes.saturating_add(n);
            if self.nodes > MAX_IR_NODES && !self.over {
                self.over = true;
                let at = self.at;
                self.diag(
                    diag::T_LIMIT,
                    Severity::Error,
                    at,
                    format!("types too large (more than {MAX_IR_NODES} nodes in this chunk)"),
                );
            }
        }
        self.counting && self.over
    }

    /// A primitive type's shared node.
    fn prim(&mut self, t: Ty) -> TyRef {
        let Some(i) = prim_index(&t) else {
            return self.mk(t);
        };
        if let Some(p) = self.prims.get(i).cloned().flatten() {
            return p;
        }
        let p = self.mk(t);
        if let Some(slot) = self.prims.get_mut(i) {
            *slot = Some(p.clone());
        }
        p
    }

    /// An annotation root, resolved once.
    fn root(&mut self, id: SynId) -> TyRef {
        if !self.typeof_targets.contains(&id) {
            return self.resolve(id);
        }
        if let Some(t) = self.memo.get(&id) {
            return t.clone();
        }
        let t = self.resolve(id);
        self.memo.insert(id, t.clone());
        t
    }

    /// Declaration `i`'s IR (a cycle through evaluation reads as `Any`).
    fn decl(&mut self, i: usize) -> TyRef {
        match self.state.get(i) {
            Some(State::Done) => {
                return self
                    .out
                    .get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| self.any.clone());
            }
            Some(State::Busy) | None => return self.any.clone(),
            Some(State::Todo) => {}
        }
        let decls = self.decls;
        let Some(d) = decls.get(i) else {
            return self.any.clone();
        };
        self.state[i] = State::Busy;
        let saved = self.at;
        self.at = d.pos;
        let body = match &d.body {
            DeclBody::Type(id) => self.resolve(*id),
            DeclBody::Interface { bases, fields } => self.interface(bases, fields),
        };
        let ty = match &d.tparams {
            Some(tps) => {
                let params = tps
                    .iter()
                    .map(|(n, b)| TyParam {
                        name: (*n).to_string(),
                        bound: b.map(|b| self.resolve(b)),
                    })
                    .collect();
                self.mk(Ty::Generic { params, body })
            }
            None => body,
        };
        self.at = saved;
        self.out[i] = Some(ty.clone());
        self.state[i] = State::Done;
        ty
    }

    fn fields(&mut self, fields: &[SynField<'a>]) -> Vec<Field> {
        fields
            .iter()
            .map(|f| Field {
                name: f.name.to_string(),
                ty: self.resolve(f.ty),
                optional: f.optional,
            })
            .collect()
    }

    /// An `interface` declaration: its bases' fields, then its own.
    /// An interface: its bases' fields (the first base naming one wins),
    /// then its own (which override them). Each base's fields are charged
    /// to the chunk's budget, a base named twice is merged once, and names
    /// are looked up in a set: `interface I : R, R, ...` over a record of
    /// 40,000 fields was a scan per field per base (26 s in one call).
    fn interface(&mut self, bases: &[SynId], own: &[SynField<'a>]) -> TyRef {
        let own = self.fields(own);
        let mut names: HashSet<String> = own.iter().map(|o| o.name.clone()).collect();
        let mut merged: HashSet<*const Ty> = HashSet::new();
        let mut fields: Vec<Field> = Vec::new();
        for &b in bases {
            let t = self.resolve(b);
            let Some(h) = self.head(&t, 0) else {
                continue;
            };
            if !merged.insert(Arc::as_ptr(&h)) {
                continue;
            }
            if let Ty::Interface { fields: fs } | Ty::Record { fields: fs, .. } = &*h {
                if self.charge(fs.len()) {
                    return self.any.clone();
                }
                for f in fs {
                    if names.insert(f.name.clone()) {
                        fields.push(f.clone());
                    }
                }
            }
        }
        fields.extend(own);
        self.mk(Ty::Interface { fields })
    }

    pub(crate) fn resolve(&mut self, id: SynId) -> TyRef {
        if self.counting && self.over {
            return self.any.clone();
        }
        if self.walk >= MAX_WALK {
            return self.any.clone();
        }
        self.walk += 1;
        let t = self.resolve_node(id);
        self.walk -= 1;
        t
    }

    fn resolve_node(&mut self, id: SynId) -> TyRef {
        let syn = self.syn;
        let Some(node) = syn.get(id as usize) else {
            return self.any.clone();
        };
        match node {
            Syn::Leaf(Ty::Any) => self.any.clone(),
            Syn::Leaf(t) => self.prim(t.clone()),
            Syn::Lit(l) => self.mk(Ty::Lit(l.clone())),
            Syn::Name {
                name,
                qualified,
                args,
                scope,
                pos,
            } => self.name(name, *qualified, args.as_deref(), *scope, *pos),
            Syn::Optional(i) => {
                let t = self.resolve(*i);
                self.mk(Ty::Optional(t))
            }
            Syn::Union(v) => {
                let v = v.iter().map(|&i| self.resolve(i)).collect();
                self.mk(Ty::Union(v))
            }
            Syn::Inter(v) => {
                let v = v.iter().map(|&i| self.resolve(i)).collect();
                self.mk(Ty::Inter(v))
            }
            Syn::Array { elem, readonly } => {
                let elem = self.resolve(*elem);
                self.mk(Ty::Array {
                    elem,
                    readonly: *readonly,
                })
            }
            Syn::Map { key, val, readonly } => {
                let key = self.resolve(*key);
                let val = self.resolve(*val);
                self.mk(Ty::Map {
                    key,
                    val,
                    readonly: *readonly,
                })
            }
            Syn::Record { fields, readonly } => {
                let fields = self.fields(fields);
                self.mk(Ty::Record {
                    fields,
                    readonly: *readonly,
                })
            }
            Syn::Interface { fields } => {
                let fields = self.fields(fields);
                self.mk(Ty::Interface { fields })
            }
            Syn::Func {
                params,
                variadic,
                rets,
            } => {
                let params = params
                    .iter()
                    .map(|p| Param {
                        name: p.name.map(str::to_string),
                        ty: self.resolve(p.ty),
                    })
                    .collect();
                let variadic = variadic.map(|v| self.resolve(v));
                let rets = rets.iter().map(|&r| self.resolve(r)).collect();
                self.mk(Ty::Func {
                    params,
                    variadic,
                    rets,
                })
            }
            Syn::Tuple(items) => {
                // A type list outside a return position: checked, then any.
                for &i in items {
                    self.resolve(i);
                }
                self.any.clone()
            }
            Syn::Annotated { inner, validators } => self.annotated(*inner, validators),
            Syn::TypeofAnnot(a) => self.root(*a),
            Syn::TypeofUnknown(p) => {
                self.diag(
                    diag::T_TYPEOF,
                    Severity::Warning,
                    *p,
                    "cannot resolve `typeof` here (only annotated locals and table constructors); read as `any`".into(),
                );
                self.any.clone()
            }
            Syn::Keyof(i, p) => {
                let t = self.resolve(*i);
                self.keyof(&t, *p)
            }
            Syn::Index(t, k, p) => {
                let t = self.resolve(*t);
                let k = self.resolve(*k);
                self.index(&t, &k, *p)
            }
            Syn::Cond { a, b, x, y, pos } => {
                let a = self.resolve(*a);
                let b = self.resolve(*b);
                let x = self.resolve(*x);
                let y = self.resolve(*y);
                if a.has_tparam() || b.has_tparam() {
                    return self.any.clone();
                }
                let saved = self.at;
                self.at = *pos;
                let r = self.subtype(&a, &b, 0);
                self.at = saved;
                match r {
                    Some(true) => x,
                    Some(false) => y,
                    None => self.any.clone(),
                }
            }
            Syn::Asserts(inner) => {
                if let Some(i) = inner {
                    self.resolve(*i);
                }
                self.any.clone()
            }
        }
    }

    /// The binding of `name` seen from `scope`.
    fn lookup(&self, mut scope: ScopeId, name: &str, decls_only: bool) -> Option<Binding> {
        while scope != NO_SCOPE {
            let s = self.scopes.get(scope as usize)?;
            for &(n, b) in &s.binds {
                if n == name && (!decls_only || matches!(b, Binding::Decl(_))) {
                    return Some(b);
                }
            }
            scope = s.parent;
        }
        None
    }

    fn name(
        &mut self,
        name: &'a str,
        qualified: bool,
        args: Option<&[SynId]>,
        scope: ScopeId,
        pos: Pos,
    ) -> TyRef {
        self.at = pos;
        let resolved_args: Option<Vec<TyRef>> =
            args.map(|a| a.iter().map(|&i| self.resolve(i)).collect());
        if qualified {
            let clean: String = name.chars().filter(|c| !c.is_whitespace()).collect();
            if self.seen_module.insert(name) {
                self.diag(
                    diag::T_MODULE,
                    Severity::Hint,
                    pos,
                    format!("`{clean}` is a module type Warren cannot see; it is not checked"),
                );
                // The span is the whole qualified name when on one line.
                if !self.quiet
                    && !name.contains(['\n', '\r'])
                    && let Some(d) = self.diags.last_mut()
                {
                    d.end_line = pos.line;
                    d.end_column = pos
                        .col
                        .saturating_add(u32::try_from(name.len()).unwrap_or(0))
                        .saturating_sub(1);
                }
            }
            return self.mk(Ty::Opaque(clean));
        }
        if let Some(p) = primitive(name) {
            return if p == Ty::Any {
                self.any.clone()
            } else {
                self.prim(p)
            };
        }
        match self.lookup(scope, name, false) {
            Some(Binding::Decl(d)) => {
                let arity = self
                    .decls
                    .get(d as usize)
                    .and_then(|x| x.tparams.as_ref())
                    .map(Vec::len);
                match (arity, resolved_args) {
                    (Some(n), Some(a)) if a.len() == n => self.mk(Ty::Inst {
                        base: DeclId(d),
                        args: a,
                    }),
                    (Some(n), Some(a)) => {
                        self.diag(
                            diag::T_ARITY,
                            Severity::Error,
                            pos,
                            format!(
                                "generic type `{name}` expects {n} type argument{}, got {}",
                                if n == 1 { "" } else { "s" },
                                a.len()
                            ),
                        );
                        self.any.clone()
                    }
                    (Some(_), None) => {
                        self.diag(
                            diag::T_ARITY,
                            Severity::Warning,
                            pos,
                            format!("generic type `{name}` used without type arguments"),
                        );
                        self.mk(Ty::Named {
                            name: name.to_string(),
                            decl: DeclId(d),
                        })
                    }
                    (None, Some(_)) => {
                        self.diag(
                            diag::T_ARITY,
                            Severity::Error,
                            pos,
                            format!("type `{name}` is not generic"),
                        );
                        self.any.clone()
                    }
                    (None, None) => self.mk(Ty::Named {
                        name: name.to_string(),
                        decl: DeclId(d),
                    }),
                }
            }
            Some(Binding::TParam(i)) => self.mk(Ty::TParam(i as usize)),
            Some(Binding::FuncTParam) => self.any.clone(),
            None => {
                self.diag(
                    diag::T_UNKNOWN,
                    Severity::Error,
                    pos,
                    format!("unknown type `{name}`"),
                );
                self.any.clone()
            }
        }
    }

    /// `T @v…`: validators attach to primitive, literal, named and array
    /// types (and stack); elsewhere they are dropped (T005).
    fn annotated(&mut self, inner: SynId, vals: &[SynValidator<'a>]) -> TyRef {
        let t = self.resolve(inner);
        let vs: Vec<Validator> = vals.iter().map(|v| self.validator(v)).collect();
        let dropped = match &*t {
            Ty::Record { .. } => Some("a record"),
            Ty::Map { .. } => Some("a map"),
            Ty::Union(_) => Some("a union"),
            Ty::Inter(_) => Some("an intersection"),
            Ty::Func { .. } => Some("a function type"),
            Ty::Inst { .. } => Some("a generic instance"),
            Ty::Interface { .. } => Some("an interface"),
            Ty::Generic { .. } => Some("a generic type"),
            _ => None,
        };
        if let Some(what) = dropped {
            let at = vals.first().map_or(self.at, |v| v.at);
            self.diag(
                diag::T_DROPPED,
                Severity::Warning,
                at,
                format!("validators on {what} are dropped (they apply only to primitive, named and array types)"),
            );
            return t;
        }
        if let Ty::Annotated { inner, validators } = &*t {
            let mut all = validators.clone();
            all.extend(vs);
            let inner = inner.clone();
            return self.mk(Ty::Annotated {
                inner,
                validators: all,
            });
        }
        self.mk(Ty::Annotated {
            inner: t,
            validators: vs,
        })
    }

    fn validator(&mut self, v: &SynValidator<'a>) -> Validator {
        let args: Vec<ValidatorArg> = v.args.iter().map(|(a, _)| a.clone()).collect();
        let arg_at = v.args.first().map_or(v.at, |a| a.1);
        let mut regex = None;
        match v.name {
            "min" | "max" | "min_len" | "max_len" => {
                let ok = matches!(
                    args.as_slice(),
                    [ValidatorArg::Int(_) | ValidatorArg::Float(_)]
                );
                if !ok {
                    self.diag(
                        diag::T_VALIDATOR,
                        Severity::Error,
                        arg_at,
                        format!("validator `@{}` expects one number", v.name),
                    );
                }
            }
            "pattern" => match args.as_slice() {
                [ValidatorArg::Str(s)] => regex = self.pattern(s, arg_at),
                _ => self.diag(
                    diag::T_VALIDATOR,
                    Severity::Error,
                    arg_at,
                    "validator `@pattern` expects one string".into(),
                ),
            },
            other => self.diag(
                diag::T_VALIDATOR,
                Severity::Warning,
                v.at,
                format!("unknown validator `@{other}` (ignored)"),
            ),
        }
        Validator {
            name: v.name.to_string(),
            args,
            regex,
        }
    }

    /// The compiled regex of `@pattern(s)`, once per text per chunk, at
    /// most [`MAX_PATTERNS`] distinct texts; `None` (with an error) for
    /// one that cannot be compiled or is one too many.
    fn pattern(&mut self, s: &str, at: Pos) -> Option<Arc<crate::Pattern>> {
        let compiled = match self.patterns.get(s) {
            Some(done) => done.clone(),
            None if self.patterns.len() >= MAX_PATTERNS => {
                self.diag(
                    diag::T_VALIDATOR,
                    Severity::Error,
                    at,
                    format!("more than {MAX_PATTERNS} distinct `@pattern` regexes in this chunk"),
                );
                return None;
            }
            None => {
                let compiled = compile_pattern(s).map(Arc::new).map_err(|e| match e {
                    crate::PatternError::TooBig => "too big",
                    crate::PatternError::Syntax => "syntax error",
                });
                self.patterns.insert(s.to_owned(), compiled.clone());
                compiled
            }
        };
        // A refusal is reported at every use (a quiet pass may have made it).
        compiled
            .map_err(|why| {
                self.diag(
                    diag::T_VALIDATOR,
                    Severity::Error,
                    at,
                    format!("invalid regex in `@pattern` ({why})"),
                );
            })
            .ok()
    }

    /// The structure behind aliases and instances (None: not known).
    pub(crate) fn head(&mut self, t: &TyRef, depth: usize) -> Option<TyRef> {
        if depth > MAX_INSTANTIATION_DEPTH {
            let at = self.at;
            self.diag(
                diag::T_LIMIT,
                Severity::Error,
                at,
                format!("type instantiated too deeply (limit is {MAX_INSTANTIATION_DEPTH})"),
            );
            return None;
        }
        match &**t {
            Ty::Named { decl, .. } => {
                let d = self.decl(decl.0 as usize);
                if matches!(&*d, Ty::Generic { .. }) {
                    return None;
                }
                self.head(&d, depth + 1)
            }
            Ty::Inst { base, args } => {
                let d = self.decl(base.0 as usize);
                let Ty::Generic { body, .. } = &*d else {
                    return None;
                };
                let body = body.clone();
                let s = self.subst(&body, args);
                self.head(&s, depth + 1)
            }
            Ty::Annotated { inner, .. } => self.head(&inner.clone(), depth),
            _ => Some(t.clone()),
        }
    }

    /// The name of declaration `d`.
    pub(crate) fn decl_name(&self, d: DeclId) -> &'a str {
        self.decls.get(d.0 as usize).map_or("?", |d| d.name)
    }

    /// `t` with generic parameter `i` replaced by `args[i]`.
    fn subst(&mut self, t: &TyRef, args: &[TyRef]) -> TyRef {
        if !t.has_tparam() {
            return t.clone();
        }
        let new = match &**t {
            Ty::TParam(i) => return args.get(*i).cloned().unwrap_or_else(|| self.any.clone()),
            Ty::Optional(i) => Ty::Optional(self.subst(i, args)),
            Ty::Union(v) => Ty::Union(v.iter().map(|t| self.subst(t, args)).collect()),
            Ty::Inter(v) => Ty::Inter(v.iter().map(|t| self.subst(t, args)).collect()),
            Ty::Array { elem, readonly } => Ty::Array {
                elem: self.subst(elem, args),
                readonly: *readonly,
            },
            Ty::Map { key, val, readonly } => Ty::Map {
                key: self.subst(key, args),
                val: self.subst(val, args),
                readonly: *readonly,
            },
            Ty::Record { fields, readonly } => Ty::Record {
                fields: self.subst_fields(fields, args),
                readonly: *readonly,
            },
            Ty::Interface { fields } => Ty::Interface {
                fields: self.subst_fields(fields, args),
            },
            Ty::Func {
                params,
                variadic,
                rets,
            } => Ty::Func {
                params: params
                    .iter()
                    .map(|p| Param {
                        name: p.name.clone(),
                        ty: self.subst(&p.ty, args),
                    })
                    .collect(),
                variadic: variadic.as_ref().map(|v| self.subst(v, args)),
                rets: rets.iter().map(|t| self.subst(t, args)).collect(),
            },
            Ty::Inst { base, args: a } => Ty::Inst {
                base: *base,
                args: a.iter().map(|t| self.subst(t, args)).collect(),
            },
            Ty::Annotated { inner, validators } => Ty::Annotated {
                inner: self.subst(inner, args),
                validators: validators.clone(),
            },
            _ => return t.clone(),
        };
        self.mk(new)
    }

    fn subst_fields(&mut self, fields: &[Field], args: &[TyRef]) -> Vec<Field> {
        fields
            .iter()
            .map(|f| Field {
                name: f.name.clone(),
                ty: self.subst(&f.ty, args),
                optional: f.optional,
            })
            .collect()
    }

    /// `keyof(T)`: the union of a record's field names, else any.
    fn keyof(&mut self, t: &TyRef, p: Pos) -> TyRef {
        let saved = self.at;
        self.at = p;
        let h = self.head(t, 0);
        self.at = saved;
        let Some(h) = h else {
            return self.any.clone();
        };
        let (Ty::Record { fields, .. } | Ty::Interface { fields }) = &*h else {
            return self.any.clone();
        };
        let mut lits: Vec<TyRef> = Vec::with_capacity(fields.len());
        for f in fields {
            let l = self.mk(Ty::Lit(Lit::Str(f.name.as_bytes().to_vec())));
            lits.push(l);
        }
        match lits.len() {
            0 => self.mk(Ty::Never),
            1 => lits.pop().unwrap_or_else(|| self.any.clone()),
            _ => self.mk(Ty::Union(lits)),
        }
    }

    /// `T[K]`: a record field's type, an array's element, a map's value.
    fn index(&mut self, t: &TyRef, k: &TyRef, p: Pos) -> TyRef {
        let saved = self.at;
        self.at = p;
        let h = self.head(t, 0);
        let kh = self.head(k, 0);
        self.at = saved;
        let (Some(h), Some(kh)) = (h, kh) else {
            return self.any.clone();
        };
        match &*h {
            Ty::Record { fields, .. } | Ty::Interface { fields } => {
                // By name through a map when more than one is looked up:
                // `R[keyof R]` over 60,000 fields was quadratic (4.8 s).
                let by_name: HashMap<&[u8], &Field> = match &*kh {
                    Ty::Union(_) => fields
                        .iter()
                        .rev()
                        .map(|f| (f.name.as_bytes(), f))
                        .collect(),
                    _ => HashMap::new(),
                };
                let field = |name: &[u8]| match &*kh {
                    Ty::Union(_) => by_name.get(name).copied(),
                    _ => fields.iter().find(|f| f.name.as_bytes() == name),
                };
                let one = |this: &mut Self, name: &[u8]| match field(name) {
                    Some(f) if f.optional => {
                        let ty = f.ty.clone();
                        this.mk(Ty::Optional(ty))
                    }
                    Some(f) => f.ty.clone(),
                    None => this.any.clone(),
                };
                match &*kh {
                    Ty::Lit(Lit::Str(s)) => one(self, s),
                    Ty::Union(v) => {
                        let mut out = Vec::new();
                        for m in v {
                            match &**m {
                                Ty::Lit(Lit::Str(s)) => out.push(one(self, s)),
                                _ => return self.any.clone(),
                            }
                        }
                        self.mk(Ty::Union(out))
                    }
                    _ => self.any.clone(),
                }
            }
            Ty::Array { elem, .. } => match &*kh {
                Ty::Integer | Ty::Number | Ty::Lit(Lit::Int(_)) => elem.clone(),
                _ => self.any.clone(),
            },
            Ty::Map { val, .. } => val.clone(),
            _ => self.any.clone(),
        }
    }

    /// Whether `a <= b`, when decidable without inference.
    fn subtype(&mut self, a: &TyRef, b: &TyRef, depth: usize) -> Option<bool> {
        if depth > MAX_INSTANTIATION_DEPTH {
            return None;
        }
        let a = self.head(a, 0)?;
        let b = self.head(b, 0)?;
        let d = depth + 1;
        match (&*a, &*b) {
            (_, Ty::Any | Ty::Unknown) | (Ty::Never, _) => Some(true),
            (Ty::Any | Ty::Unknown, _) => None,
            (Ty::Union(ms), _) => {
                let mut all = true;
                for m in ms {
                    match self.subtype(m, &b, d) {
                        Some(true) => {}
                        Some(false) => return Some(false),
                        None => all = false,
                    }
                }
                all.then_some(true)
            }
            (_, Ty::Union(ms)) => {
                let mut none = true;
                for m in ms {
                    match self.subtype(&a, m, d) {
                        Some(true) => return Some(true),
                        Some(false) => {}
                        None => none = false,
                    }
                }
                none.then_some(false)
            }
            (Ty::Nil, Ty::Optional(_)) => Some(true),
            (Ty::Optional(i), _) => {
                let nil = Arc::new(Ty::Nil);
                match (self.subtype(&nil, &b, d), self.subtype(i, &b, d)) {
                    (Some(true), Some(true)) => Some(true),
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    _ => None,
                }
            }
            (_, Ty::Optional(i)) => self.subtype(&a, i, d),
            (Ty::Lit(x), Ty::Lit(y)) => Some(x == y),
            (Ty::Lit(l), p) => Some(matches!(
                (l, p),
                (Lit::Str(_), Ty::String)
                    | (Lit::Int(_), Ty::Integer | Ty::Number)
                    | (Lit::Float(_), Ty::Number)
                    | (Lit::Bool(_), Ty::Boolean)
            )),
            (Ty::Record { fields: fa, .. }, Ty::Record { fields: fb, .. }) => {
                // By name through a map: a scan per field was quadratic
                // (two records of 48,000 fields: 2.9 s in one comparison).
                let by_name: HashMap<&str, &Field> =
                    fa.iter().map(|g| (g.name.as_str(), g)).collect();
                let mut all = true;
                for f in fb {
                    match by_name.get(f.name.as_str()).copied() {
                        Some(g) => match self.subtype(&g.ty, &f.ty, d) {
                            Some(true) => {}
                            Some(false) => return Some(false),
                            None => all = false,
                        },
                        None if f.optional => {}
                        None => return Some(false),
                    }
                }
                all.then_some(true)
            }
            (Ty::Array { elem: x, .. }, Ty::Array { elem: y, .. }) => self.subtype(x, y, d),
            (
                Ty::Record { .. } | Ty::Array { .. } | Ty::Map { .. } | Ty::Interface { .. },
                Ty::Table,
            ) => Some(true),
            (Ty::Integer, Ty::Number) => Some(true),
            (x, y) if is_simple(x) && is_simple(y) => Some(x == y),
            (x, y) => match (category(x), category(y)) {
                (Some(p), Some(q)) if p != q => Some(false),
                _ => None,
            },
        }
    }

    /// Decides which global reads become `__warren_types.N` (§3.4, "which
    /// names become values"); T006 and T007.
    fn references(&mut self, refs: &[Ref<'a>]) -> Vec<usize> {
        let mut assigned: HashMap<&'a str, Pos> = HashMap::new();
        for r in refs.iter().filter(|r| r.usage == Usage::Assign) {
            assigned.entry(r.name).or_insert(r.pos);
        }
        // T006: an assigned global named like a top-level type.
        let mut t006: Vec<(&'a str, Pos)> = assigned
            .iter()
            .filter(|(n, _)| matches!(self.lookup(0, n, true), Some(Binding::Decl(_))))
            .map(|(n, p)| (*n, *p))
            .collect();
        t006.sort_by_key(|(_, p)| (p.line, p.col));
        for (n, p) in t006 {
            self.diag(
                diag::T_GLOBAL,
                Severity::Warning,
                p,
                format!("global `{n}` is assigned, so the type `{n}` is not bound as a value"),
            );
        }
        let mut inserts = Vec::new();
        for r in refs {
            if r.usage == Usage::Assign {
                continue;
            }
            if PRIMITIVE_VALUES.contains(&r.name) {
                let typed = match r.usage {
                    Usage::Call | Usage::Method => true,
                    Usage::Field(m) => TYPE_METHODS.contains(&m),
                    _ => false,
                };
                if typed {
                    inserts.push(r.at);
                }
                continue;
            }
            let Some(Binding::Decl(d)) = self.lookup(r.scope, r.name, true) else {
                continue;
            };
            if assigned.contains_key(r.name) {
                continue;
            }
            if self.decls.get(d as usize).is_some_and(|d| d.top_level) {
                inserts.push(r.at);
            } else {
                self.diag(
                    diag::T_NESTED,
                    Severity::Error,
                    r.pos,
                    format!(
                        "type `{}` is not declared at the top level of the chunk, so it has no run-time value",
                        r.name
                    ),
                );
            }
        }
        inserts.sort_unstable();
        inserts
    }
}

/// Types compared by equality in [`Resolver::subtype`].
fn is_simple(t: &Ty) -> bool {
    matches!(
        t,
        Ty::Nil | Ty::Boolean | Ty::Number | Ty::Integer | Ty::String | Ty::Table
    )
}

/// The Lua type a type's values have, when it has exactly one.
fn category(t: &Ty) -> Option<u8> {
    Some(match t {
        Ty::Nil => 0,
        Ty::Boolean | Ty::Lit(Lit::Bool(_)) => 1,
        Ty::Number | Ty::Integer | Ty::Lit(Lit::Int(_) | Lit::Float(_)) => 2,
        Ty::String | Ty::Lit(Lit::Str(_)) => 3,
        Ty::Table
        | Ty::Record { .. }
        | Ty::Array { .. }
        | Ty::Map { .. }
        | Ty::Interface { .. } => 4,
        Ty::Func { .. } => 5,
        _ => return None,
    })
}

/// Compiles `@pattern(s)` ([`crate::Pattern`]: Go RE2's syntax over bytes,
/// ASCII word boundaries, a match that can be stopped), its automaton at
/// most [`REGEX_SIZE_LIMIT`].
pub fn compile_pattern(s: &str) -> Result<crate::Pattern, crate::PatternError> {
    crate::Pattern::new(s, REGEX_SIZE_LIMIT)
}
