//! Phase C's value checks (typed-lua.md §3.6, T010–T016), run once names
//! are resolved, over what the parser recorded ([`Facts`]).
//!
//! Principle: no false positives. A value is checked only when it is a
//! constant (a literal, a table constructor of such, a `function`
//! expression), and it is reported only when it is *definitely* not
//! assignable. Assignability is three-valued (`Some(true)`, `Some(false)`,
//! `None` = cannot tell); only `Some(false)` gives a diagnostic. `any`,
//! `unknown`, module types and whatever cannot be resolved accept
//! everything.

use std::collections::HashMap;
use std::sync::Arc;

use crate::diag::{self, Diagnostic, Lines, Severity};
use crate::facts::{Entry, Ex, Fact, Facts, FnFacts, Key, NONE, Val};
use crate::lit;
use crate::resolve::Resolver;
use crate::syn::SynId;
use crate::ty::{Lit, Ty, TyRef};

/// Deepest nesting of constructors and types followed.
const MAX_DEPTH: usize = 32;

/// At most this many bytes of a literal are quoted in a message.
const QUOTE_MAX: usize = 40;

/// A constant value, as the checks see it.
#[derive(Clone, Debug)]
enum C {
    Nil,
    Bool(bool),
    Num(Lit),
    Str(Vec<u8>),
    Table(u32),
    Func,
}

/// Runs the checks; their diagnostics (unsorted).
pub(crate) fn run(r: &mut Resolver<'_, '_>, f: &Facts<'_>, src: &str) -> Vec<Diagnostic> {
    if f.facts.is_empty() && f.pending.is_empty() && f.funcs.iter().all(|x| x.rets.is_none()) {
        return Vec::new();
    }
    let mut c = Checker {
        r,
        f,
        src,
        memo: HashMap::new(),
        lines: Lines::new(src),
        out: Vec::new(),
        field_scans: 0,
        type_steps: 0,
    };
    c.all();
    c.out
}

struct Checker<'c, 'r, 'a, 'x> {
    r: &'c mut Resolver<'r, 'a>,
    f: &'c Facts<'x>,
    src: &'c str,
    /// Annotations resolved so far.
    memo: HashMap<SynId, TyRef>,
    lines: Lines<'c>,
    out: Vec<Diagnostic>,
    /// Record fields scanned by the T014 check, against
    /// [`MAX_FIELD_SCANS`].
    field_scans: usize,
    /// Types visited by the value checks, against [`MAX_TYPE_STEPS`].
    type_steps: usize,
}

/// Record fields and constructor entries the T014 and T010 checks (a
/// read of a field a record does not declare, a constructor a record
/// type refuses) scan per chunk; past it those checks cannot tell and
/// stay silent. 30,000 reads of a record of 30,000 fields took 0.9 s of a
/// worker in one `load`.
const MAX_FIELD_SCANS: usize = 16 << 20;

/// Types the value checks visit per chunk (each member of a union or an
/// intersection, each element or field type, once per value it is checked
/// against); past it they cannot tell and stay silent. An intersection of
/// four copies of the type one level down, twelve levels deep, is 4^12
/// visits for one constant: a 681-byte source held its worker (in `load`)
/// and `warren check` for over a minute (red team J). At this bound that
/// source's `load` takes 11 ms (48 ms at four times it); a real chunk's
/// constants are checked in far fewer visits.
const MAX_TYPE_STEPS: usize = 1 << 18;

impl<'c, 'x> Checker<'c, '_, '_, 'x> {
    fn all(&mut self) {
        let f = self.f;
        for p in &f.pending {
            self.push(p.code, Severity::Warning, p.span, p.message.clone());
        }
        for fact in &f.facts {
            match fact {
                Fact::Init {
                    annot,
                    name,
                    local,
                    value,
                } => self.init(*annot, *name, *local, value.as_ref()),
                Fact::Return { func, values } => {
                    let Some(rets) = f.funcs.get(*func as usize).and_then(|x| x.rets.as_ref())
                    else {
                        continue;
                    };
                    for (v, &rt) in values.iter().zip(rets) {
                        if v.is_multi() {
                            break;
                        }
                        let t = self.ty(rt);
                        self.check(&t, v);
                    }
                }
                Fact::Call { local, args, span } => self.call(*local, args, *span),
                Fact::Field {
                    local,
                    name,
                    span,
                    write,
                } => {
                    if !*write {
                        self.field(*local, name, *span);
                    }
                }
            }
        }
        for ff in &f.funcs {
            self.returns(ff);
        }
    }

    // ---- the places checked ---------------------------------------------

    /// An annotated local's value (T010, T011).
    fn init(&mut self, annot: SynId, name: (usize, usize), local: u32, value: Option<&Ex>) {
        let t = self.ty(annot);
        match value {
            Some(v) => self.check(&t, v),
            None => {
                if self.accepts_nil(&t) == Some(false) {
                    let n = self.f.locals.get(local as usize).map_or("?", |l| l.name);
                    let shown = self.show(&t);
                    self.push(
                        diag::T_NIL,
                        Severity::Warning,
                        name,
                        format!(
                            "local `{n}` gets no value, so it is nil, but its type `{shown}` does not allow nil"
                        ),
                    );
                }
            }
        }
    }

    /// A call of a local by its name (T015; T012 and T010 for a local
    /// typed function never reassigned).
    fn call(&mut self, local: u32, args: &[Ex], span: (usize, usize)) {
        let f = self.f;
        let Some(l) = f.locals.get(local as usize) else {
            return;
        };
        if let Some(a) = l.annot {
            let t = self.ty(a);
            let prim = self.r.head(&t, 0).is_some_and(|h| {
                matches!(
                    &*h,
                    Ty::Number | Ty::Integer | Ty::String | Ty::Boolean | Ty::Lit(_)
                )
            });
            if prim {
                let shown = self.show(&t);
                self.push(
                    diag::T_NOT_CALLABLE,
                    Severity::Warning,
                    span,
                    format!("`{}` is a `{shown}`; calling it fails", l.name),
                );
            }
        }
        if l.func == NONE || l.reassigned {
            return;
        }
        let Some(ff) = f.funcs.get(l.func as usize) else {
            return;
        };
        if !ff.live || ff.params.iter().all(Option::is_none) {
            return;
        }
        for (arg, p) in args.iter().zip(&ff.params) {
            if let Some(p) = p
                && !arg.is_multi()
            {
                let t = self.ty(*p);
                self.check(&t, arg);
            }
        }
        if args.last().is_some_and(Ex::is_multi) {
            return;
        }
        let n = args.len();
        let mut required = 0;
        for (i, p) in ff.params.iter().enumerate() {
            if let Some(p) = p {
                let t = self.ty(*p);
                if self.accepts_nil(&t) == Some(false) {
                    required = i + 1;
                }
            }
        }
        let plural = |k: usize| if k == 1 { "" } else { "s" };
        let message = if n < required {
            format!(
                "`{}` needs at least {required} argument{}, got {n}",
                l.name,
                plural(required)
            )
        } else if n > ff.params.len() && !ff.vararg {
            let most = ff.params.len();
            format!(
                "`{}` takes at most {most} argument{}, got {n}",
                l.name,
                plural(most)
            )
        } else {
            return;
        };
        self.push(diag::T_ARGS, Severity::Error, span, message);
    }

    /// `local.name` read on a local annotated with a declared record type
    /// (T014).
    fn field(&mut self, local: u32, name: &str, span: (usize, usize)) {
        let Some(a) = self.f.locals.get(local as usize).and_then(|l| l.annot) else {
            return;
        };
        let t = self.ty(a);
        let mut declared = &t;
        while let Ty::Annotated { inner, .. } = &**declared {
            declared = inner;
        }
        if !matches!(&**declared, Ty::Named { .. } | Ty::Inst { .. }) {
            return;
        }
        let Some(h) = self.r.head(&t, 0) else {
            return;
        };
        let Ty::Record { fields, .. } = &*h else {
            return;
        };
        self.field_scans = self.field_scans.saturating_add(fields.len());
        if self.field_scans > MAX_FIELD_SCANS || fields.iter().any(|f| f.name == name) {
            return;
        }
        let shown = self.show(&t);
        self.push(
            diag::T_NO_FIELD,
            Severity::Warning,
            span,
            format!("type `{shown}` has no field `{name}`"),
        );
    }

    /// A function that declares non-optional returns but never returns a
    /// value nor calls `error` (T013).
    fn returns(&mut self, ff: &FnFacts) {
        let Some(rets) = ff.rets.as_ref() else {
            return;
        };
        if !ff.live || ff.returns_value || ff.calls_error {
            return;
        }
        for &r in rets {
            let t = self.ty(r);
            if self.accepts_nil(&t) == Some(false) {
                let shown = self.show(&t);
                self.push(
                    diag::T_NO_RETURN,
                    Severity::Warning,
                    ff.name,
                    format!(
                        "this function declares a return value of type `{shown}` but never returns a value"
                    ),
                );
                return;
            }
        }
    }

    // ---- assignability --------------------------------------------------

    /// Reports `v` when it is definitely not assignable to `t` (T010, or
    /// T011 for a `nil`), at the innermost offending expression.
    fn check(&mut self, t: &TyRef, v: &Ex) {
        if self.accepts(t, v, 0) != Some(false) {
            return;
        }
        let (at, message) = self.blame(t, v, 0);
        let code = if at.val == Val::Nil {
            diag::T_NIL
        } else {
            diag::T_MISMATCH
        };
        self.push(code, Severity::Error, (at.start, at.end), message);
    }

    /// The constant an expression is, if it is one.
    fn konst(&self, v: &Ex) -> Option<C> {
        let text = || self.src.get(v.start..v.end).unwrap_or("");
        Some(match v.val {
            Val::Nil => C::Nil,
            Val::True => C::Bool(true),
            Val::False => C::Bool(false),
            Val::Num => C::Num(lit::number(text())),
            Val::Str => C::Str(lit::string(text())),
            Val::Table(i) => C::Table(i),
            Val::Func(_) => C::Func,
            Val::Multi | Val::Other => return None,
        })
    }

    fn accepts(&mut self, t: &TyRef, v: &Ex, depth: usize) -> Option<bool> {
        let c = self.konst(v)?;
        self.accepts_c(t, &c, depth)
    }

    fn accepts_nil(&mut self, t: &TyRef) -> Option<bool> {
        self.accepts_c(t, &C::Nil, 0)
    }

    /// Whether type `t` accepts constant `c` (None: cannot tell).
    fn accepts_c(&mut self, t: &TyRef, c: &C, depth: usize) -> Option<bool> {
        self.type_steps += 1;
        if depth > MAX_DEPTH || self.type_steps > MAX_TYPE_STEPS {
            return None;
        }
        let h = self.r.head(t, 0)?;
        let d = depth + 1;
        match &*h {
            Ty::Any | Ty::Unknown | Ty::Opaque(_) => Some(true),
            Ty::Optional(i) => match c {
                C::Nil => Some(true),
                _ => self.accepts_c(i, c, d),
            },
            Ty::Union(ms) => {
                let mut none = false;
                for m in ms {
                    match self.accepts_c(m, c, d) {
                        Some(true) => return Some(true),
                        Some(false) => {}
                        None => none = true,
                    }
                }
                if none { None } else { Some(false) }
            }
            Ty::Inter(ms) => {
                let mut all = true;
                for m in ms {
                    match self.accepts_c(m, c, d) {
                        Some(true) => {}
                        Some(false) => return Some(false),
                        None => all = false,
                    }
                }
                all.then_some(true)
            }
            Ty::Nil => Some(matches!(c, C::Nil)),
            Ty::Boolean => Some(matches!(c, C::Bool(_))),
            Ty::Number => Some(matches!(c, C::Num(_))),
            Ty::Integer => match c {
                C::Num(Lit::Int(_)) => Some(true),
                // `2.0` passes `integer` at run time: cannot tell.
                C::Num(Lit::Float(x)) if x.is_finite() && x.fract() == 0.0 => None,
                _ => Some(false),
            },
            Ty::String => Some(matches!(c, C::Str(_))),
            Ty::Lit(l) => match (l, c) {
                (Lit::Str(a), C::Str(b)) => Some(a == b),
                (Lit::Bool(a), C::Bool(b)) => Some(a == b),
                (Lit::Int(a), C::Num(Lit::Int(b))) => Some(a == b),
                (Lit::Float(a), C::Num(Lit::Float(b))) => Some(a == b),
                (Lit::Int(a), C::Num(Lit::Float(b))) | (Lit::Float(b), C::Num(Lit::Int(a))) => {
                    if (*a as f64) == *b {
                        None
                    } else {
                        Some(false)
                    }
                }
                _ => Some(false),
            },
            Ty::Table => Some(matches!(c, C::Table(_))),
            Ty::Error => match c {
                C::Str(_) => Some(true),
                C::Nil => Some(false),
                _ => None,
            },
            Ty::Func { .. } => match c {
                C::Func => None,
                _ => Some(false),
            },
            Ty::Interface { .. } => match c {
                C::Nil => Some(false),
                _ => None,
            },
            Ty::Record { fields, .. } => match c {
                C::Table(i) => {
                    let fields = fields.clone();
                    self.record(&fields, *i, d)
                }
                C::Nil => Some(false),
                _ if fields.is_empty() => None,
                _ => Some(false),
            },
            Ty::Array { elem, .. } => match c {
                C::Table(i) => {
                    let elem = elem.clone();
                    let mut all = true;
                    for e in self.entries(*i) {
                        if !matches!(e.key, Key::Pos(_)) || e.val.val == Val::Nil {
                            continue;
                        }
                        match self.accepts(&elem, &e.val, d) {
                            Some(true) => {}
                            Some(false) => return Some(false),
                            None => all = false,
                        }
                    }
                    all.then_some(true)
                }
                _ => Some(false),
            },
            Ty::Map { key, val, .. } => match c {
                C::Table(i) => {
                    let (key, val) = (key.clone(), val.clone());
                    let mut all = true;
                    for e in self.entries(*i) {
                        if e.val.val == Val::Nil {
                            continue;
                        }
                        let k = match e.key {
                            Key::Name(n) => self.accepts_c(&key, &C::Str(n.as_bytes().to_vec()), d),
                            Key::Pos(p) => self.accepts_c(&key, &C::Num(Lit::Int(p.into())), d),
                            Key::Expr(k) => self.accepts(&key, &k, d),
                        };
                        // A key of the wrong type is not reported (an array
                        // literal may stand for an empty map): only values.
                        let v = self.accepts(&val, &e.val, d);
                        match (k, v) {
                            (_, Some(false)) => return Some(false),
                            (Some(true), Some(true)) => {}
                            _ => all = false,
                        }
                    }
                    all.then_some(true)
                }
                _ => Some(false),
            },
            _ => None,
        }
    }

    /// The entries of constructor `i`.
    fn entries(&self, i: u32) -> &'c [Entry<'x>] {
        let f: &'c Facts<'x> = self.f;
        f.tables.get(i as usize).map_or(&[], Vec::as_slice)
    }

    /// The last entry of constructor `i` whose key is the string `name`;
    /// `Err(())` when some key is computed (it may be `name`).
    fn entry_named(&mut self, i: u32, name: &str) -> Result<Option<Entry<'x>>, ()> {
        let mut found = None;
        let mut computed = false;
        // Each lookup scans the constructor: bounded per chunk, past it the
        // check cannot tell (33,000 fields against a constructor of as many
        // entries held a worker 2.5 s in one `load`).
        let entries = self.entries(i);
        self.field_scans = self.field_scans.saturating_add(entries.len());
        if self.field_scans > MAX_FIELD_SCANS {
            return Err(());
        }
        for e in entries {
            match e.key {
                Key::Name(n) if n == name => found = Some(*e),
                Key::Expr(k) => match self.konst(&k) {
                    Some(C::Str(s)) if s == name.as_bytes() => found = Some(*e),
                    Some(C::Str(_) | C::Num(_) | C::Bool(_)) => {}
                    _ => computed = true,
                },
                _ => {}
            }
        }
        match found {
            Some(e) => Ok(Some(e)),
            None if computed => Err(()),
            None => Ok(None),
        }
    }

    /// A field's type as seen by a value (`T?` for an optional field).
    fn field_ty(f: &crate::ty::Field) -> TyRef {
        if f.optional {
            Arc::new(Ty::Optional(f.ty.clone()))
        } else {
            f.ty.clone()
        }
    }

    /// Whether constructor `i` is assignable to a record with `fields`
    /// (width subtyping: extra keys are fine). A missing required field
    /// is not reported (the table may be filled in later); an explicit
    /// `nil` for it is.
    fn record(&mut self, fields: &[crate::ty::Field], i: u32, d: usize) -> Option<bool> {
        let mut all = true;
        for f in fields {
            let ft = Self::field_ty(f);
            let r = match self.entry_named(i, &f.name) {
                Ok(Some(e)) => self.accepts(&ft, &e.val, d),
                Ok(None) => match self.accepts_c(&ft, &C::Nil, d) {
                    Some(true) => Some(true),
                    _ => None,
                },
                Err(()) => None,
            };
            match r {
                Some(true) => {}
                Some(false) => return Some(false),
                None => all = false,
            }
        }
        all.then_some(true)
    }

    /// Where and why `v` (definitely not assignable to `t`) fails: the
    /// innermost offending expression and the message.
    fn blame(&mut self, t: &TyRef, v: &Ex, depth: usize) -> (Ex, String) {
        let whole = |this: &mut Self| {
            let shown = this.show(t);
            let msg = if v.val == Val::Nil {
                format!("`nil` is not assignable to non-optional `{shown}`")
            } else {
                format!("{} is not assignable to `{shown}`", this.describe(v))
            };
            (*v, msg)
        };
        if depth > MAX_DEPTH {
            return whole(self);
        }
        let Some(h) = self.r.head(t, 0) else {
            return whole(self);
        };
        let d = depth + 1;
        match (&*h, v.val) {
            (Ty::Optional(i), val) if val != Val::Nil => {
                let i = i.clone();
                if self.accepts(&i, v, d) == Some(false) {
                    return self.blame(&i, v, d);
                }
            }
            (Ty::Record { fields, .. }, Val::Table(ti)) => {
                let fields = fields.clone();
                for f in &fields {
                    let ft = Self::field_ty(f);
                    if let Ok(Some(e)) = self.entry_named(ti, &f.name)
                        && self.accepts(&ft, &e.val, d) == Some(false)
                    {
                        let (at, m) = self.blame(&ft, &e.val, d);
                        return (at, format!("field `{}`: {m}", f.name));
                    }
                }
            }
            (Ty::Array { elem, .. }, Val::Table(ti)) => {
                let elem = elem.clone();
                let entries = self.entries(ti);
                for e in entries.iter().copied() {
                    if let Key::Pos(n) = e.key
                        && e.val.val != Val::Nil
                        && self.accepts(&elem, &e.val, d) == Some(false)
                    {
                        let (at, m) = self.blame(&elem, &e.val, d);
                        return (at, format!("element [{n}]: {m}"));
                    }
                }
            }
            (Ty::Map { val, .. }, Val::Table(ti)) => {
                let val = val.clone();
                let entries = self.entries(ti);
                for e in entries.iter().copied() {
                    if e.val.val != Val::Nil && self.accepts(&val, &e.val, d) == Some(false) {
                        return self.blame(&val, &e.val, d);
                    }
                }
            }
            _ => {}
        }
        whole(self)
    }

    // ---- helpers ----------------------------------------------------------

    /// An annotation's type (resolved quietly, once).
    fn ty(&mut self, id: SynId) -> TyRef {
        if let Some(t) = self.memo.get(&id) {
            return t.clone();
        }
        let t = self.r.resolve(id);
        self.memo.insert(id, t.clone());
        t
    }

    fn push(&mut self, code: &'static str, sev: Severity, span: (usize, usize), message: String) {
        let (line, column) = self.lines.pos(span.0);
        let (end_line, end_column) = self.lines.end_pos(span.0, span.1);
        let mut d = Diagnostic::with(code, sev, line, column, message);
        d.end_line = end_line;
        d.end_column = end_column;
        self.out.push(d);
    }

    /// How a value is named in a message.
    fn describe(&self, v: &Ex) -> String {
        match v.val {
            Val::Table(_) => "this table".into(),
            Val::Func(_) => "a function".into(),
            _ => {
                let text = self.src.get(v.start..v.end).unwrap_or("");
                let mut end = text.len().min(QUOTE_MAX);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                let dots = if end < text.len() { "..." } else { "" };
                format!("`{}{dots}`", text.get(..end).unwrap_or(""))
            }
        }
    }

    /// A type as written in messages.
    fn show(&mut self, t: &TyRef) -> String {
        let mut s = String::new();
        self.render(t, &mut s, 0);
        s
    }

    fn render(&mut self, t: &Ty, out: &mut String, depth: usize) {
        if depth > 4 || out.len() > 120 {
            out.push_str("...");
            return;
        }
        let d = depth + 1;
        let list = |this: &mut Self, v: &[TyRef], sep: &str, out: &mut String| {
            for (i, m) in v.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                this.render(m, out, d);
            }
        };
        match t {
            Ty::Nil => out.push_str("nil"),
            Ty::Boolean => out.push_str("boolean"),
            Ty::Number => out.push_str("number"),
            Ty::Integer => out.push_str("integer"),
            Ty::String => out.push_str("string"),
            Ty::Any => out.push_str("any"),
            Ty::Unknown => out.push_str("unknown"),
            Ty::Never => out.push_str("never"),
            Ty::Table => out.push_str("table"),
            Ty::Error => out.push_str("error"),
            Ty::Lit(Lit::Str(s)) => {
                out.push('"');
                out.push_str(&String::from_utf8_lossy(s));
                out.push('"');
            }
            Ty::Lit(Lit::Int(i)) => out.push_str(&i.to_string()),
            Ty::Lit(Lit::Float(x)) => out.push_str(&format!("{x:?}")),
            Ty::Lit(Lit::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
            Ty::Optional(i) => {
                let paren = matches!(&**i, Ty::Union(_) | Ty::Inter(_) | Ty::Func { .. });
                if paren {
                    out.push('(');
                }
                self.render(i, out, d);
                if paren {
                    out.push(')');
                }
                out.push('?');
            }
            Ty::Union(v) => list(self, v, " | ", out),
            Ty::Inter(v) => list(self, v, " & ", out),
            Ty::Array { elem, .. } => {
                out.push('{');
                self.render(elem, out, d);
                out.push('}');
            }
            Ty::Map { key, val, .. } => {
                out.push_str("{[");
                self.render(key, out, d);
                out.push_str("]: ");
                self.render(val, out, d);
                out.push('}');
            }
            Ty::Record { fields, .. } | Ty::Interface { fields } => {
                if matches!(t, Ty::Interface { .. }) {
                    out.push_str("interface ");
                }
                out.push('{');
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&f.name);
                    out.push_str(if f.optional { "?: " } else { ": " });
                    self.render(&f.ty, out, d);
                }
                out.push('}');
            }
            Ty::Func { .. } => out.push_str("function"),
            Ty::Named { name, .. } => out.push_str(name),
            Ty::Generic { .. } => out.push_str("generic"),
            Ty::TParam(_) => out.push_str("type parameter"),
            Ty::Inst { base, args } => {
                out.push_str(self.r.decl_name(*base));
                out.push('<');
                list(self, args, ", ", out);
                out.push('>');
            }
            Ty::Annotated { inner, .. } => self.render(inner, out, d),
            Ty::Opaque(n) => out.push_str(n),
        }
    }
}
