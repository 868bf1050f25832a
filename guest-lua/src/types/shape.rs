//! Pure operations on the type IR: resolution through the table,
//! substitution of generic parameters, rendering, and the structural
//! relations behind `==` and `<=` (typed-lua.md §3.5).

use std::fmt::Write as _;
use std::sync::Arc;

use warren_lua_dialect::ty::{
    DeclId, Field, Lit, Param, Ty, TyParam, TyRef, TypeTable, Validator, ValidatorArg,
};

/// Depth cap of validation and resolution (Wippy's).
pub(super) const MAX_DEPTH: usize = 64;
/// Longest rendering of a type (longer ones end with `...`).
const MAX_RENDER: usize = 512;
/// Most steps one `==` or `<=` takes before it answers `false`.
const MAX_RELATE_STEPS: usize = 100_000;

/// Whether `ty` refers to a declaration (so it only means something with
/// its own table). Each node is looked at once, however often it is
/// shared: a type built at run time is a graph, and `Pair(P, P)` nested
/// 28 times, walked as a tree, held the worker 5.8 s in one generic's
/// instantiation (40 levels: for good; red team J). Stops at the first
/// declaration.
pub(super) fn mentions_decls(ty: &Ty) -> bool {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![ty];
    while let Some(t) = stack.pop() {
        if !seen.insert(std::ptr::from_ref(t)) {
            continue;
        }
        if matches!(t, Ty::Named { .. } | Ty::Inst { .. }) {
            return true;
        }
        push_children(t, &mut stack);
    }
    false
}

/// Pushes the child types of `ty`.
fn push_children<'t>(ty: &'t Ty, out: &mut Vec<&'t Ty>) {
    match ty {
        Ty::Optional(t) | Ty::Array { elem: t, .. } | Ty::Annotated { inner: t, .. } => {
            out.push(t);
        }
        Ty::Union(ts) | Ty::Inter(ts) | Ty::Inst { args: ts, .. } => {
            out.extend(ts.iter().map(|t| &**t));
        }
        Ty::Map { key, val, .. } => {
            out.push(key);
            out.push(val);
        }
        Ty::Record { fields, .. } | Ty::Interface { fields } => {
            out.extend(fields.iter().map(|fl| &*fl.ty));
        }
        Ty::Func {
            params,
            variadic,
            rets,
        } => {
            out.extend(params.iter().map(|p| &*p.ty));
            out.extend(variadic.iter().map(|v| &**v));
            out.extend(rets.iter().map(|t| &**t));
        }
        Ty::Generic { params, body } => {
            out.extend(params.iter().filter_map(|p| p.bound.as_deref()));
            out.push(body);
        }
        _ => {}
    }
}

/// `ty` with its children replaced by `f`.
fn map_children(ty: &Ty, f: &mut dyn FnMut(&TyRef) -> TyRef) -> Ty {
    let many = |ts: &[TyRef], f: &mut dyn FnMut(&TyRef) -> TyRef| ts.iter().map(f).collect();
    let fields = |fs: &[Field], f: &mut dyn FnMut(&TyRef) -> TyRef| {
        fs.iter()
            .map(|fl| Field {
                name: fl.name.clone(),
                ty: f(&fl.ty),
                optional: fl.optional,
            })
            .collect()
    };
    match ty {
        Ty::Optional(t) => Ty::Optional(f(t)),
        Ty::Union(ts) => Ty::Union(many(ts, f)),
        Ty::Inter(ts) => Ty::Inter(many(ts, f)),
        Ty::Array { elem, readonly } => Ty::Array {
            elem: f(elem),
            readonly: *readonly,
        },
        Ty::Map { key, val, readonly } => Ty::Map {
            key: f(key),
            val: f(val),
            readonly: *readonly,
        },
        Ty::Record {
            fields: fs,
            readonly,
        } => Ty::Record {
            fields: fields(fs, f),
            readonly: *readonly,
        },
        Ty::Interface { fields: fs } => Ty::Interface {
            fields: fields(fs, f),
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
                    ty: f(&p.ty),
                })
                .collect(),
            variadic: variadic.as_ref().map(&mut *f),
            rets: many(rets, f),
        },
        Ty::Inst { base, args } => Ty::Inst {
            base: *base,
            args: many(args, f),
        },
        Ty::Annotated { inner, validators } => Ty::Annotated {
            inner: f(inner),
            validators: validators.clone(),
        },
        Ty::Generic { params, body } => Ty::Generic {
            params: params
                .iter()
                .map(|p| TyParam {
                    name: p.name.clone(),
                    bound: p.bound.as_ref().map(&mut *f),
                })
                .collect(),
            body: f(body),
        },
        other => other.clone(),
    }
}

/// `ty` with generic parameter `n` replaced by `args[n]` (`any` if missing).
pub(super) fn subst(ty: &TyRef, args: &[TyRef]) -> TyRef {
    if !ty.has_tparam() {
        return ty.clone();
    }
    match &**ty {
        Ty::TParam(n) => args.get(*n).cloned().unwrap_or_else(|| Arc::new(Ty::Any)),
        Ty::Generic { .. } => ty.clone(),
        t => Arc::new(map_children(t, &mut |c| subst(c, args))),
    }
}

/// One resolution step: a named type's declaration, an instance's body
/// with its arguments substituted. `None` for anything else (or a dangling
/// id).
pub(super) fn step(ty: &Ty, table: &TypeTable) -> Option<TyRef> {
    match ty {
        Ty::Named { decl, .. } => table.get(*decl).map(|d| d.ty.clone()),
        Ty::Inst { base, args } => {
            let decl = table.get(*base)?;
            Some(match &*decl.ty {
                Ty::Generic { body, .. } => subst(body, args),
                _ => decl.ty.clone(),
            })
        }
        _ => None,
    }
}

/// `ty` seen through names, instances and (when `validated`) validators.
/// `None` when the chain is longer than [`MAX_DEPTH`] (an alias cycle).
pub(super) fn look(ty: &TyRef, table: &TypeTable, validated: bool) -> Option<TyRef> {
    let mut cur = ty.clone();
    for _ in 0..=MAX_DEPTH {
        let next = match &*cur {
            Ty::Named { .. } | Ty::Inst { .. } => step(&cur, table),
            Ty::Annotated { inner, .. } if validated => Some(inner.clone()),
            _ => return Some(cur),
        };
        cur = next?;
    }
    None
}

/// The kind name `T:kind()` gives.
pub(super) fn kind(ty: &TyRef, table: &TypeTable) -> &'static str {
    let mut cur = ty.clone();
    for _ in 0..=MAX_DEPTH {
        let next = match &*cur {
            Ty::Nil => return "nil",
            Ty::Boolean => return "boolean",
            Ty::Number => return "number",
            Ty::Integer => return "integer",
            Ty::String => return "string",
            Ty::Any => return "any",
            Ty::Unknown | Ty::Opaque(_) | Ty::TParam(_) => return "unknown",
            Ty::Never => return "never",
            Ty::Table => return "table",
            Ty::Error => return "error",
            Ty::Lit(_) => return "literal",
            Ty::Optional(_) => return "optional",
            Ty::Union(_) => return "union",
            Ty::Inter(_) => return "intersection",
            Ty::Array { .. } => return "array",
            Ty::Map { .. } => return "map",
            Ty::Record { .. } => return "record",
            Ty::Interface { .. } => return "interface",
            Ty::Func { .. } => return "function",
            Ty::Generic { .. } => return "generic",
            Ty::Inst { .. } => return "instantiated",
            Ty::Named { .. } => step(&cur, table),
            Ty::Annotated { inner, .. } => Some(inner.clone()),
        };
        match next {
            Some(n) => cur = n,
            None => return "unknown",
        }
    }
    "unknown"
}

/// The name of a primitive type, if `ty` is one (those have per-VM
/// singleton values).
pub(super) fn primitive_name(ty: &Ty) -> Option<&'static str> {
    Some(match ty {
        Ty::String => "string",
        Ty::Integer => "integer",
        Ty::Number => "number",
        Ty::Boolean => "boolean",
        Ty::Any => "any",
        Ty::Unknown => "unknown",
        Ty::Never => "never",
        Ty::Nil => "nil",
        _ => return None,
    })
}

/// A float as Lua's `tostring` writes it (`2.0`, `1.5`, `1e+100`).
pub(super) fn lua_float(f: f64) -> String {
    if f.is_nan() {
        return if f.is_sign_negative() { "-nan" } else { "nan" }.to_owned();
    }
    if f.is_infinite() {
        return if f < 0.0 { "-inf" } else { "inf" }.to_owned();
    }
    if f.fract() == 0.0 && f.abs() < 1e15 {
        return format!("{f:.1}");
    }
    format!("{f}")
}

/// A string literal as the dialect writes it: `"fast"`.
fn quote(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => {
                    let _ = write!(out, "\\{}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\{b}");
        }
    }
    out.push('"');
}

/// The text of a type: a name where it has one, else its structure.
pub(super) fn render(ty: &Ty, table: &TypeTable) -> String {
    let mut out = String::new();
    render_into(ty, table, &[], &mut out);
    if out.len() > MAX_RENDER {
        let mut cut = MAX_RENDER;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

fn render_lit(lit: &Lit, out: &mut String) {
    match lit {
        Lit::Str(s) => quote(out, s),
        Lit::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Lit::Float(f) => out.push_str(&lua_float(*f)),
        Lit::Bool(b) => {
            let _ = write!(out, "{b}");
        }
    }
}

fn render_validator(v: &Validator, out: &mut String) {
    out.push('@');
    out.push_str(&v.name);
    if !v.args.is_empty() {
        out.push('(');
        for (i, a) in v.args.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            match a {
                ValidatorArg::Int(n) => {
                    let _ = write!(out, "{n}");
                }
                ValidatorArg::Float(f) => out.push_str(&lua_float(*f)),
                ValidatorArg::Str(s) => quote(out, s.as_bytes()),
                ValidatorArg::Other => out.push('_'),
            }
        }
        out.push(')');
    }
}

fn render_fields(fields: &[Field], table: &TypeTable, names: &[TyParam], out: &mut String) {
    out.push('{');
    for (i, f) in fields.iter().enumerate() {
        if out.len() > MAX_RENDER {
            return;
        }
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&f.name);
        out.push_str(if f.optional { "?: " } else { ": " });
        render_into(&f.ty, table, names, out);
    }
    out.push('}');
}

/// Renders `ty`, in parentheses when it is a union, intersection or
/// function (inside `?`, `|`, `&`).
fn render_grouped(ty: &Ty, table: &TypeTable, names: &[TyParam], out: &mut String) {
    if matches!(ty, Ty::Union(_) | Ty::Inter(_) | Ty::Func { .. }) {
        out.push('(');
        render_into(ty, table, names, out);
        out.push(')');
    } else {
        render_into(ty, table, names, out);
    }
}

fn render_list(
    ts: &[TyRef],
    sep: &str,
    table: &TypeTable,
    names: &[TyParam],
    out: &mut String,
    grouped: bool,
) {
    for (i, t) in ts.iter().enumerate() {
        if out.len() > MAX_RENDER {
            return;
        }
        if i > 0 {
            out.push_str(sep);
        }
        if grouped {
            render_grouped(t, table, names, out);
        } else {
            render_into(t, table, names, out);
        }
    }
}

fn render_into(ty: &Ty, table: &TypeTable, names: &[TyParam], out: &mut String) {
    if out.len() > MAX_RENDER {
        return;
    }
    if let Some(p) = primitive_name(ty) {
        out.push_str(p);
        return;
    }
    match ty {
        Ty::Table => out.push_str("table"),
        Ty::Error => out.push_str("error"),
        Ty::Lit(l) => render_lit(l, out),
        Ty::Optional(t) => {
            render_grouped(t, table, names, out);
            out.push('?');
        }
        Ty::Union(ts) => render_list(ts, " | ", table, names, out, true),
        Ty::Inter(ts) => render_list(ts, " & ", table, names, out, true),
        Ty::Array { elem, readonly } => {
            if *readonly {
                out.push_str("readonly ");
            }
            out.push('{');
            render_into(elem, table, names, out);
            out.push('}');
        }
        Ty::Map { key, val, readonly } => {
            if *readonly {
                out.push_str("readonly ");
            }
            out.push_str("{[");
            render_into(key, table, names, out);
            out.push_str("]: ");
            render_into(val, table, names, out);
            out.push('}');
        }
        Ty::Record { fields, readonly } => {
            if *readonly {
                out.push_str("readonly ");
            }
            render_fields(fields, table, names, out);
        }
        Ty::Interface { fields } => {
            out.push_str("interface ");
            render_fields(fields, table, names, out);
        }
        Ty::Func {
            params,
            variadic,
            rets,
        } => {
            out.push('(');
            for (i, p) in params.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                if let Some(n) = &p.name {
                    out.push_str(n);
                    out.push_str(": ");
                }
                render_into(&p.ty, table, names, out);
            }
            if let Some(v) = variadic {
                if !params.is_empty() {
                    out.push_str(", ");
                }
                out.push_str("...");
                render_into(v, table, names, out);
            }
            out.push_str(") -> ");
            if let [one] = rets.as_slice() {
                render_grouped(one, table, names, out);
            } else {
                out.push('(');
                render_list(rets, ", ", table, names, out, false);
                out.push(')');
            }
        }
        Ty::Named { name, .. } => out.push_str(name),
        Ty::Generic { params, body } => {
            out.push('<');
            for (i, p) in params.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&p.name);
                if let Some(b) = &p.bound {
                    out.push_str(": ");
                    render_into(b, table, names, out);
                }
            }
            out.push('>');
            render_into(body, table, params, out);
        }
        Ty::TParam(n) => match names.get(*n) {
            Some(p) => out.push_str(&p.name),
            None => {
                let _ = write!(out, "${n}");
            }
        },
        Ty::Inst { base, args } => {
            match table.get(*base) {
                Some(d) => out.push_str(&d.name),
                None => out.push('?'),
            }
            out.push('<');
            render_list(args, ", ", table, names, out, false);
            out.push('>');
        }
        Ty::Annotated { inner, validators } => {
            render_grouped(inner, table, names, out);
            for v in validators {
                out.push(' ');
                render_validator(v, out);
            }
        }
        Ty::Opaque(name) => out.push_str(name),
        // Primitives are rendered above.
        _ => {}
    }
}

/// One side of a comparison: a type and the table its names resolve in.
#[derive(Clone, Copy)]
pub(super) struct Side<'a> {
    pub table: &'a TypeTable,
}

/// Structural equality and subtyping between types of (possibly) two
/// tables. Recursive types compare coinductively: a pair of declarations
/// already being compared is assumed related.
///
/// A pair of nodes found related with no assumption open is remembered
/// (by the nodes' addresses, which the compared types keep alive), so a
/// type built at run time, a graph, is compared once per pair of nodes,
/// not once per path: two equal `Pair(P, P)` nested 15 times were
/// compared as trees, ran out of [`MAX_RELATE_STEPS`], and were unequal.
pub(super) struct Relate<'a> {
    a: Side<'a>,
    b: Side<'a>,
    assumed: Vec<(DeclId, DeclId, bool)>,
    steps: usize,
    /// Pairs found equal (`false`) or `a <= b` (`true`).
    proven: std::collections::HashSet<(usize, usize, bool)>,
}

impl<'a> Relate<'a> {
    pub(super) fn new(a: Side<'a>, b: Side<'a>) -> Self {
        Self {
            a,
            b,
            assumed: Vec::new(),
            steps: 0,
            proven: std::collections::HashSet::new(),
        }
    }

    /// `relate(a, b)` (`eq_node` or `sub_node`), remembered when it holds
    /// with no assumption open.
    fn memo(
        &mut self,
        a: &TyRef,
        b: &TyRef,
        sub: bool,
        relate: impl FnOnce(&mut Self) -> bool,
    ) -> bool {
        let key = (Arc::as_ptr(a) as usize, Arc::as_ptr(b) as usize, sub);
        if self.proven.contains(&key) {
            return true;
        }
        let held = relate(self);
        if held && self.assumed.is_empty() {
            self.proven.insert(key);
        }
        held
    }

    /// `a == b`, structurally.
    pub(super) fn eq(&mut self, a: &TyRef, b: &TyRef, depth: usize) -> bool {
        self.memo(a, b, false, |r| r.eq_node(a, b, depth))
    }

    /// `a <= b`: every value of `a` is a value of `b` (§3.5's rules).
    pub(super) fn sub(&mut self, a: &TyRef, b: &TyRef, depth: usize) -> bool {
        self.memo(a, b, true, |r| r.sub_node(a, b, depth))
    }

    fn same_table(&self) -> bool {
        std::ptr::eq(self.a.table, self.b.table)
    }

    fn tick(&mut self, depth: usize) -> bool {
        self.steps += 1;
        self.steps <= MAX_RELATE_STEPS && depth <= MAX_DEPTH * 4
    }

    /// Resolves names and instances on both sides, with the coinductive
    /// assumption for two names. `Err(answer)` when the assumption answers.
    fn unfold(
        &mut self,
        a: &TyRef,
        b: &TyRef,
        sub: bool,
    ) -> Result<Option<(TyRef, TyRef, Option<usize>)>, bool> {
        let a_named = matches!(&**a, Ty::Named { .. } | Ty::Inst { .. });
        let b_named = matches!(&**b, Ty::Named { .. } | Ty::Inst { .. });
        if !a_named && !b_named {
            return Ok(None);
        }
        if let (Ty::Named { decl: da, .. }, Ty::Named { decl: db, .. }) = (&**a, &**b) {
            if self.same_table() && da == db {
                return Err(true);
            }
            if self
                .assumed
                .iter()
                .any(|&(x, y, s)| x == *da && y == *db && (s == sub || !s))
            {
                return Err(true);
            }
            self.assumed.push((*da, *db, sub));
            let na = step(a, self.a.table).ok_or(false)?;
            let nb = step(b, self.b.table).ok_or(false)?;
            return Ok(Some((na, nb, Some(self.assumed.len() - 1))));
        }
        let na = if a_named {
            step(a, self.a.table).ok_or(false)?
        } else {
            a.clone()
        };
        let nb = if b_named {
            step(b, self.b.table).ok_or(false)?
        } else {
            b.clone()
        };
        Ok(Some((na, nb, None)))
    }

    fn eq_node(&mut self, a: &TyRef, b: &TyRef, depth: usize) -> bool {
        if !self.tick(depth) {
            return false;
        }
        if Arc::ptr_eq(a, b) && self.same_table() {
            return true;
        }
        match self.unfold(a, b, false) {
            Err(answer) => return answer,
            Ok(Some((na, nb, pushed))) => {
                let r = self.eq(&na, &nb, depth + 1);
                if pushed.is_some() {
                    self.assumed.pop();
                }
                return r;
            }
            Ok(None) => {}
        }
        let d = depth + 1;
        match (&**a, &**b) {
            (Ty::Lit(x), Ty::Lit(y)) => lit_eq(x, y),
            (Ty::Optional(x), Ty::Optional(y)) => self.eq(x, y, d),
            (Ty::Union(xs), Ty::Union(ys)) | (Ty::Inter(xs), Ty::Inter(ys)) => {
                xs.iter().all(|x| ys.iter().any(|y| self.eq(x, y, d)))
                    && ys.iter().all(|y| xs.iter().any(|x| self.eq(x, y, d)))
            }
            (
                Ty::Array {
                    elem: x,
                    readonly: rx,
                },
                Ty::Array {
                    elem: y,
                    readonly: ry,
                },
            ) => rx == ry && self.eq(x, y, d),
            (
                Ty::Map {
                    key: kx,
                    val: vx,
                    readonly: rx,
                },
                Ty::Map {
                    key: ky,
                    val: vy,
                    readonly: ry,
                },
            ) => rx == ry && self.eq(kx, ky, d) && self.eq(vx, vy, d),
            (
                Ty::Record {
                    fields: fx,
                    readonly: rx,
                },
                Ty::Record {
                    fields: fy,
                    readonly: ry,
                },
            ) => rx == ry && self.fields_eq(fx, fy, d),
            (Ty::Interface { fields: fx }, Ty::Interface { fields: fy }) => {
                self.fields_eq(fx, fy, d)
            }
            (
                Ty::Func {
                    params: px,
                    variadic: vx,
                    rets: rx,
                },
                Ty::Func {
                    params: py,
                    variadic: vy,
                    rets: ry,
                },
            ) => {
                px.len() == py.len()
                    && rx.len() == ry.len()
                    && px.iter().zip(py).all(|(x, y)| self.eq(&x.ty, &y.ty, d))
                    && match (vx, vy) {
                        (None, None) => true,
                        (Some(x), Some(y)) => self.eq(x, y, d),
                        _ => false,
                    }
                    && rx.iter().zip(ry).all(|(x, y)| self.eq(x, y, d))
            }
            (
                Ty::Generic {
                    params: px,
                    body: bx,
                },
                Ty::Generic {
                    params: py,
                    body: by,
                },
            ) => px.len() == py.len() && self.eq(bx, by, d),
            (Ty::TParam(x), Ty::TParam(y)) => x == y,
            (
                Ty::Annotated {
                    inner: x,
                    validators: vx,
                },
                Ty::Annotated {
                    inner: y,
                    validators: vy,
                },
            ) => vx == vy && self.eq(x, y, d),
            (Ty::Opaque(x), Ty::Opaque(y)) => x == y,
            (x, y) => {
                std::mem::discriminant(x) == std::mem::discriminant(y)
                    && (primitive_name(x).is_some() || matches!(x, Ty::Table | Ty::Error))
            }
        }
    }

    /// Fields are matched by name through a map: a scan per field was
    /// quadratic, and two records of 48,000 fields held a worker 2.9 s in
    /// one `==` (the steps counted only the comparisons of types).
    fn fields_eq(&mut self, fx: &[Field], fy: &[Field], d: usize) -> bool {
        if fx.len() != fy.len() {
            return false;
        }
        let by_name = by_name(fy);
        fx.iter().all(|x| {
            by_name
                .get(x.name.as_str())
                .is_some_and(|y| y.optional == x.optional && self.eq(&x.ty, &y.ty, d))
        })
    }

    /// `a <= b`: every value of `a` is a value of `b` (§3.5's rules).
    fn sub_node(&mut self, a: &TyRef, b: &TyRef, depth: usize) -> bool {
        if !self.tick(depth) {
            return false;
        }
        if self.eq(a, b, depth) {
            return true;
        }
        match self.unfold(a, b, true) {
            Err(answer) => return answer,
            Ok(Some((na, nb, pushed))) => {
                let r = self.sub(&na, &nb, depth + 1);
                if pushed.is_some() {
                    self.assumed.pop();
                }
                return r;
            }
            Ok(None) => {}
        }
        let d = depth + 1;
        let nil = || Arc::new(Ty::Nil);
        match (&**a, &**b) {
            (Ty::Never, _) | (_, Ty::Any | Ty::Unknown) => return true,
            (Ty::Annotated { inner, .. }, _) => return self.sub(inner, b, d),
            (Ty::Union(xs), _) => return xs.iter().all(|x| self.sub(x, b, d)),
            (Ty::Optional(x), _) => return self.sub(&nil(), b, d) && self.sub(x, b, d),
            _ => {}
        }
        match &**b {
            Ty::Optional(y) => return matches!(&**a, Ty::Nil) || self.sub(a, y, d),
            Ty::Union(ys) => return ys.iter().any(|y| self.sub(a, y, d)),
            Ty::Inter(ys) => return ys.iter().all(|y| self.sub(a, y, d)),
            _ => {}
        }
        if let Ty::Inter(xs) = &**a {
            return xs.iter().any(|x| self.sub(x, b, d));
        }
        match (&**a, &**b) {
            (Ty::Integer, Ty::Number)
            | (Ty::Lit(Lit::Int(_)), Ty::Integer | Ty::Number)
            | (Ty::Lit(Lit::Float(_)), Ty::Number)
            | (Ty::Lit(Lit::Str(_)), Ty::String | Ty::Error)
            | (Ty::Lit(Lit::Bool(_)), Ty::Boolean)
            | (Ty::String, Ty::Error)
            | (
                Ty::Array { .. }
                | Ty::Map { .. }
                | Ty::Record { .. }
                | Ty::Interface { .. }
                | Ty::Table,
                Ty::Table,
            ) => true,
            (
                Ty::Array {
                    elem: x,
                    readonly: _,
                },
                Ty::Array {
                    elem: y,
                    readonly: ry,
                },
            ) => {
                if *ry {
                    self.sub(x, y, d)
                } else {
                    self.eq(x, y, d)
                }
            }
            (
                Ty::Map {
                    key: kx, val: vx, ..
                },
                Ty::Map {
                    key: ky,
                    val: vy,
                    readonly: ry,
                },
            ) => {
                if *ry {
                    self.sub(kx, ky, d) && self.sub(vx, vy, d)
                } else {
                    self.eq(kx, ky, d) && self.eq(vx, vy, d)
                }
            }
            (
                Ty::Record { fields: fx, .. } | Ty::Interface { fields: fx },
                Ty::Record {
                    fields: fy,
                    readonly: ry,
                },
            ) => self.fields_sub(fx, fy, *ry, d),
            (
                Ty::Record { fields: fx, .. } | Ty::Interface { fields: fx },
                Ty::Interface { fields: fy },
            ) => self.fields_sub(fx, fy, true, d),
            (
                Ty::Func {
                    params: px,
                    variadic: vx,
                    rets: rx,
                },
                Ty::Func {
                    params: py,
                    rets: ry,
                    ..
                },
            ) => {
                py.iter()
                    .enumerate()
                    .all(|(i, y)| match px.get(i).map(|p| &p.ty).or(vx.as_ref()) {
                        Some(x) => self.sub(&y.ty, x, d),
                        None => true,
                    })
                    && ry.iter().enumerate().all(|(i, y)| match rx.get(i) {
                        Some(x) => self.sub(x, y, d),
                        None => self.sub(&nil(), y, d),
                    })
            }
            _ => false,
        }
    }

    fn fields_sub(&mut self, fx: &[Field], fy: &[Field], covariant: bool, d: usize) -> bool {
        let by_name = by_name(fx);
        fy.iter()
            .all(|y| match by_name.get(y.name.as_str()).copied() {
                None => y.optional,
                Some(x) => {
                    (!x.optional || y.optional)
                        && if covariant {
                            self.sub(&x.ty, &y.ty, d)
                        } else {
                            self.eq(&x.ty, &y.ty, d)
                        }
                }
            })
    }
}

fn lit_eq(x: &Lit, y: &Lit) -> bool {
    match (x, y) {
        (Lit::Float(a), Lit::Float(b)) => a == b || (a.is_nan() && b.is_nan()),
        _ => x == y,
    }
}

/// `fields` by name (the first of a name, as a scan found it).
fn by_name(fields: &[Field]) -> std::collections::HashMap<&str, &Field> {
    let mut map = std::collections::HashMap::with_capacity(fields.len());
    for f in fields {
        map.entry(f.name.as_str()).or_insert(f);
    }
    map
}
