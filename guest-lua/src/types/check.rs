//! Validation of a Lua value against a type (typed-lua.md §3.5): raw
//! reads only, depth capped, the budget polled, failure details built only
//! on failure.

use crate::machine::fast;
use mlua::{Lua, Table, Value};
use warren_lua_dialect::ty::{Lit, Ty, TyRef, TypeTable, Validator, ValidatorArg};
use warren_lua_dialect::{Pattern, Unanswered};

use super::shape::{self, MAX_DEPTH};
use crate::convert::entry::warren_tableslots;

/// How often (in visited values) the budget is asked.
pub(super) const POLL_EVERY: u32 = 4096;

/// Alias hops (a named type or a generic's instance followed) a
/// validation may take per value position it has reached, whatever their
/// depth. `type A = A | A` has no depth past 64 hops on any one chain,
/// but each union doubles the chains: 2^64 of them held a worker until
/// the stuck limit ended the process (250 ms, its error blaming a long
/// library call). Past this the hop fails as too deep, at once, and so
/// does every later one of the run: a type that reaches a value through
/// this many aliases is one that recurses through itself.
const HOPS_PER_VALUE: u64 = 4096;

/// Work (bytes a pattern scans or a field name costs, slots a map's
/// traversal reads) after which the budget is asked too, whatever the
/// count of values: one visit can be far more than one value's work (a
/// pattern over 16 MiB, 40 ms; 200 of them held a worker 7.5 s between
/// two polls by count).
const WORK_PER_POLL: u64 = 1 << 20;

/// The Lua type name of a value, as `type()` gives it (integers and floats
/// are both `number`).
pub(super) fn lua_type(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

/// One step of a failure's path.
#[derive(Debug)]
pub(super) enum Seg {
    /// A record field or a string key: `.name`.
    Field(String),
    /// An array index or a non-string key: `[3]`.
    Index(String),
}

/// A validation failure with its details.
#[derive(Debug, Default)]
pub(super) struct Failure {
    /// Innermost first.
    path: Vec<Seg>,
    message: String,
    pub expected: Option<String>,
    pub got: Option<String>,
    pub constraint: Option<String>,
}

impl Failure {
    /// `a.b[3]`, or empty at the root.
    pub(super) fn path(&self) -> String {
        let mut out = String::new();
        for seg in self.path.iter().rev() {
            match seg {
                Seg::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Seg::Index(key) => {
                    out.push('[');
                    out.push_str(key);
                    out.push(']');
                }
            }
        }
        out
    }

    /// The message with its path: `age: value below minimum`.
    pub(super) fn message(&self) -> String {
        let path = self.path();
        if path.is_empty() {
            self.message.clone()
        } else {
            format!("{path}: {}", self.message)
        }
    }
}

/// Why a validation stopped.
#[derive(Debug)]
pub(super) enum Stop {
    /// Invalid; details were not asked for.
    Quiet,
    /// Invalid, with details.
    Fail(Box<Failure>),
    /// The budget said stop (its reason).
    Budget(String),
    /// Lua itself failed (out of memory).
    Lua(mlua::Error),
}

impl Stop {
    fn at(self, seg: impl FnOnce() -> Seg) -> Self {
        match self {
            Stop::Fail(mut f) => {
                f.path.push(seg());
                Stop::Fail(f)
            }
            other => other,
        }
    }
}

impl From<mlua::Error> for Stop {
    fn from(e: mlua::Error) -> Self {
        Stop::Lua(e)
    }
}

type Check = Result<(), Stop>;

/// Longest key shown in a path.
const MAX_KEY: usize = 64;

fn key_text(bytes: &[u8]) -> String {
    let cut = bytes.len().min(MAX_KEY);
    let mut s = String::from_utf8_lossy(&bytes[..cut]).into_owned();
    if cut < bytes.len() {
        s.push_str("...");
    }
    s
}

/// The path step for a map key: strings as fields, others in brackets.
fn key_seg(k: &Value, as_key: bool) -> Seg {
    let text = match k {
        Value::String(s) => {
            let t = key_text(&s.as_bytes());
            return if as_key { Seg::Index(t) } else { Seg::Field(t) };
        }
        Value::Integer(i) => i.to_string(),
        Value::Number(f) => shape::lua_float(*f),
        Value::Boolean(b) => b.to_string(),
        other => lua_type(other).to_owned(),
    };
    Seg::Index(text)
}

/// One validation run.
pub(super) struct Checker<'a> {
    pub lua: &'a Lua,
    pub table: &'a TypeTable,
    pub budget: &'a dyn Fn() -> Option<String>,
    visits: u32,
    /// Value positions reached (checks at the start of an alias chain)
    /// and alias hops taken, for [`HOPS_PER_VALUE`].
    positions: u64,
    hops: u64,
    /// Work since the budget was last asked (see [`WORK_PER_POLL`]).
    work: u64,
    error_mt: Option<Option<Table>>,
}

impl<'a> Checker<'a> {
    pub(super) fn new(
        lua: &'a Lua,
        table: &'a TypeTable,
        budget: &'a dyn Fn() -> Option<String>,
    ) -> Self {
        crate::preempt::validation_begins();
        Self {
            lua,
            table,
            budget,
            visits: 0,
            positions: 0,
            hops: 0,
            work: 0,
            error_mt: None,
        }
    }

    /// Validates `v` against `ty` (closed: no free generic parameter).
    /// With `detail` false a failure is [`Stop::Quiet`] and allocates
    /// nothing. `hint` names the type in a top-level mismatch.
    pub(super) fn run(&mut self, ty: &TyRef, v: &Value, hint: Option<&Ty>, detail: bool) -> Check {
        self.check(ty, &[], v, (0, 0), hint, detail)
    }

    /// Counts an alias hop; false once the run has taken more than
    /// [`HOPS_PER_VALUE`] per value position it reached.
    fn hop(&mut self) -> bool {
        self.hops = self.hops.saturating_add(1);
        self.hops <= HOPS_PER_VALUE.saturating_mul(self.positions)
    }

    fn tick(&mut self) -> Check {
        self.visits = self.visits.wrapping_add(1);
        if self.visits.is_multiple_of(POLL_EVERY)
            && let Some(reason) = (self.budget)()
        {
            return Err(Stop::Budget(reason));
        }
        Ok(())
    }

    /// Counts `units` of work before it is done, asking the budget once
    /// they add up to [`WORK_PER_POLL`].
    fn charge(&mut self, units: usize) -> Check {
        self.work = self
            .work
            .saturating_add(u64::try_from(units).unwrap_or(u64::MAX));
        if self.work >= WORK_PER_POLL {
            self.work = 0;
            if let Some(reason) = (self.budget)() {
                return Err(Stop::Budget(reason));
            }
        }
        Ok(())
    }

    /// `@pattern`'s verdict on `text`: its bytes count as work, and the
    /// budget is asked every [`warren_lua_dialect::POLL_BYTES`] of the
    /// match, which stops there when told to (one match of a pattern whose
    /// DFA thrashes held a worker 21 s).
    fn pattern(&mut self, re: &Pattern, text: &[u8]) -> Result<Option<&'static str>, Stop> {
        self.charge(text.len())?;
        let budget = self.budget;
        let mut reason = None;
        let found = re.find_in(text, &mut || match budget() {
            Some(r) => {
                reason = Some(r);
                false
            }
            None => true,
        });
        match found {
            Ok(true) => Ok(None),
            Ok(false) | Err(Unanswered::GaveUp) => Ok(Some("pattern mismatch")),
            Err(Unanswered::Stopped) => Err(Stop::Budget(reason.unwrap_or_default())),
        }
    }

    /// The slots table `t` has (array part and node array): what a
    /// traversal of it reads, empty ones too.
    fn slots(&self, t: &Table) -> usize {
        // SAFETY: the table is the one argument on the stack; the slot
        // count reads it and pushes one integer.
        let n: mlua::Result<i64> = unsafe {
            self.lua.exec_raw(t, |l| {
                let n = warren_tableslots(l, -1);
                fast::pushinteger(l, i64::from(n));
            })
        };
        n.ok().and_then(|n| usize::try_from(n).ok()).unwrap_or(0)
    }

    fn expected_text(&self, ty: &Ty, hint: Option<&Ty>) -> String {
        shape::render(hint.unwrap_or(ty), self.table)
    }

    fn mismatch(&self, ty: &Ty, hint: Option<&Ty>, v: &Value, detail: bool) -> Stop {
        if !detail {
            return Stop::Quiet;
        }
        let expected = self.expected_text(ty, hint);
        let got = lua_type(v);
        Stop::Fail(Box::new(Failure {
            message: format!("expected {expected}, got {got}"),
            expected: Some(expected),
            got: Some(got.to_owned()),
            ..Failure::default()
        }))
    }

    fn too_deep(&self, ty: &Ty, hint: Option<&Ty>, detail: bool) -> Stop {
        if !detail {
            return Stop::Quiet;
        }
        let expected = self.expected_text(ty, hint);
        Stop::Fail(Box::new(Failure {
            message: format!("expected {expected}, got recursion limit exceeded"),
            expected: Some(expected),
            got: Some("recursion limit exceeded".to_owned()),
            ..Failure::default()
        }))
    }

    fn is_error_object(&mut self, t: &Table) -> bool {
        let Some(mt) = t.metatable() else {
            return false;
        };
        let lua = self.lua;
        let err_mt = self.error_mt.get_or_insert_with(|| {
            lua.named_registry_value::<Option<Table>>("warren.error_mt")
                .ok()
                .flatten()
        });
        err_mt
            .as_ref()
            .is_some_and(|e| e.to_pointer() == mt.to_pointer())
    }

    #[expect(
        clippy::too_many_lines,
        reason = "one arm per type, as in §3.5's table"
    )]
    fn check<'t>(
        &mut self,
        ty: &'t Ty,
        env: &'t [TyRef],
        v: &Value,
        (depth, hops): (usize, usize),
        hint: Option<&'t Ty>,
        detail: bool,
    ) -> Check {
        let here = (depth, hops);
        let below = (depth + 1, 0);
        self.tick()?;
        if hops == 0 {
            self.positions = self.positions.saturating_add(1);
        }
        let ok = match ty {
            Ty::Any | Ty::Unknown | Ty::Opaque(_) => true,
            Ty::Never => false,
            Ty::Nil => v.is_nil(),
            Ty::Boolean => matches!(v, Value::Boolean(_)),
            Ty::String => matches!(v, Value::String(_)),
            Ty::Number => matches!(v, Value::Integer(_) | Value::Number(_)),
            Ty::Integer => match v {
                Value::Integer(_) => true,
                Value::Number(f) => f.is_finite() && f.fract() == 0.0,
                _ => false,
            },
            Ty::Table | Ty::Interface { .. } => matches!(v, Value::Table(_)),
            Ty::Func { .. } => matches!(v, Value::Function(_)),
            Ty::Error => match v {
                Value::String(_) => true,
                Value::Table(t) => self.is_error_object(t),
                _ => false,
            },
            Ty::Lit(lit) => lit_matches(lit, v),
            Ty::TParam(n) => {
                return match env.get(*n) {
                    Some(arg) => self.check(arg, &[], v, here, hint, detail),
                    None => Ok(()),
                };
            }
            Ty::Generic { .. } => false,
            Ty::Optional(inner) => {
                return if v.is_nil() {
                    Ok(())
                } else {
                    self.check(inner, env, v, here, hint, detail)
                };
            }
            Ty::Union(members) => {
                for m in members {
                    match self.check(m, env, v, here, None, false) {
                        Ok(()) => return Ok(()),
                        Err(Stop::Quiet | Stop::Fail(_)) => {}
                        Err(other) => return Err(other),
                    }
                }
                // The rendered union, as §3.5 says (not the name).
                return Err(self.mismatch(ty, None, v, detail));
            }
            Ty::Inter(members) => {
                for m in members {
                    self.check(m, env, v, here, None, detail)?;
                }
                return Ok(());
            }
            Ty::Named { decl, .. } => {
                if hops >= MAX_DEPTH || !self.hop() {
                    return Err(self.too_deep(ty, hint.or(Some(ty)), detail));
                }
                let Some(d) = self.table.get(*decl) else {
                    return Ok(());
                };
                if let Ty::Generic { .. } = &*d.ty {
                    return Err(self.mismatch(ty, Some(ty), v, detail));
                }
                return self.check(
                    &d.ty,
                    &[],
                    v,
                    (depth, hops + 1),
                    Some(hint.unwrap_or(ty)),
                    detail,
                );
            }
            Ty::Inst { base, args } => {
                if hops >= MAX_DEPTH || !self.hop() {
                    return Err(self.too_deep(ty, hint.or(Some(ty)), detail));
                }
                let Some(d) = self.table.get(*base) else {
                    return Ok(());
                };
                let Ty::Generic { body, .. } = &*d.ty else {
                    return self.check(&d.ty, &[], v, (depth, hops + 1), hint, detail);
                };
                let hint = Some(hint.unwrap_or(ty));
                return if !env.is_empty() && args.iter().any(|a| a.has_tparam()) {
                    let closed: Vec<TyRef> = args.iter().map(|a| shape::subst(a, env)).collect();
                    self.check(body, &closed, v, (depth, hops + 1), hint, detail)
                } else {
                    self.check(body, args, v, (depth, hops + 1), hint, detail)
                };
            }
            Ty::Annotated { inner, validators } => {
                self.check(inner, env, v, here, hint, detail)?;
                for val in validators {
                    let failed = match (&val.regex, v) {
                        (Some(re), Value::String(text)) => self.pattern(re, &text.as_bytes())?,
                        _ => validator_failure(val, v),
                    };
                    if let Some(msg) = failed {
                        if !detail {
                            return Err(Stop::Quiet);
                        }
                        return Err(Stop::Fail(Box::new(Failure {
                            message: msg.to_owned(),
                            expected: Some(self.expected_text(ty, hint)),
                            got: Some(lua_type(v).to_owned()),
                            constraint: Some(val.name.clone()),
                            ..Failure::default()
                        })));
                    }
                }
                return Ok(());
            }
            Ty::Array { elem, .. } => {
                let Value::Table(t) = v else {
                    return Err(self.mismatch(ty, hint, v, detail));
                };
                if depth >= MAX_DEPTH {
                    return Err(self.too_deep(ty, hint, detail));
                }
                let n = t.raw_len();
                for i in 1..=n {
                    self.tick()?;
                    let item: Value = t.raw_get(i)?;
                    if item.is_nil() {
                        continue;
                    }
                    self.check(elem, env, &item, below, None, detail)
                        .map_err(|e| e.at(|| Seg::Index(i.to_string())))?;
                }
                return Ok(());
            }
            Ty::Map { key, val, .. } => {
                let Value::Table(t) = v else {
                    return Err(self.mismatch(ty, hint, v, detail));
                };
                if depth >= MAX_DEPTH {
                    return Err(self.too_deep(ty, hint, detail));
                }
                self.charge(self.slots(t))?;
                for pair in t.pairs::<Value, Value>() {
                    let (k, item) = pair?;
                    self.check(key, env, &k, below, None, detail)
                        .map_err(|e| e.at(|| key_seg(&k, true)))?;
                    self.check(val, env, &item, below, None, detail)
                        .map_err(|e| e.at(|| key_seg(&k, false)))?;
                }
                return Ok(());
            }
            Ty::Record { fields, .. } => {
                let Value::Table(t) = v else {
                    return Err(self.mismatch(ty, hint, v, detail));
                };
                if depth >= MAX_DEPTH {
                    return Err(self.too_deep(ty, hint, detail));
                }
                for f in fields {
                    self.charge(f.name.len())?;
                    let item: Value = t.raw_get(f.name.as_str())?;
                    if item.is_nil() {
                        if f.optional {
                            continue;
                        }
                        match self.check(&f.ty, env, &Value::Nil, below, None, false) {
                            Ok(()) => continue,
                            Err(Stop::Quiet | Stop::Fail(_)) => {}
                            Err(other) => return Err(other),
                        }
                        if !detail {
                            return Err(Stop::Quiet);
                        }
                        return Err(Stop::Fail(Box::new(Failure {
                            path: vec![Seg::Field(f.name.clone())],
                            message: "required field missing".to_owned(),
                            expected: Some(shape::render(&f.ty, self.table)),
                            got: Some("nil".to_owned()),
                            constraint: Some("required".to_owned()),
                        })));
                    }
                    self.check(&f.ty, env, &item, below, None, detail)
                        .map_err(|e| e.at(|| Seg::Field(f.name.clone())))?;
                }
                return Ok(());
            }
        };
        if ok {
            Ok(())
        } else {
            Err(self.mismatch(ty, hint, v, detail))
        }
    }
}

fn lit_matches(lit: &Lit, v: &Value) -> bool {
    match (lit, v) {
        (Lit::Str(s), Value::String(x)) => *x.as_bytes() == **s,
        (Lit::Int(n), Value::Integer(i)) => i == n,
        #[expect(
            clippy::cast_precision_loss,
            reason = "checked exactly by the round trip"
        )]
        (Lit::Int(n), Value::Number(f)) => {
            *f == *n as f64 && f.is_finite() && (*f as i128) == i128::from(*n)
        }
        (Lit::Float(x), Value::Number(f)) => x == f,
        (Lit::Bool(b), Value::Boolean(x)) => b == x,
        _ => false,
    }
}

/// A validator argument as a number.
enum Num {
    Int(i64),
    Float(f64),
}

fn num_arg(val: &Validator) -> Option<Num> {
    match val.args.first()? {
        ValidatorArg::Int(n) => Some(Num::Int(*n)),
        ValidatorArg::Float(f) => Some(Num::Float(*f)),
        _ => None,
    }
}

/// `value <=> bound`, for numbers only.
#[expect(
    clippy::cast_precision_loss,
    reason = "mixed int/float compares as Lua does, near enough"
)]
fn cmp(v: &Value, bound: &Num) -> Option<std::cmp::Ordering> {
    match (v, bound) {
        (Value::Integer(i), Num::Int(n)) => Some(i.cmp(n)),
        (Value::Integer(i), Num::Float(f)) => (*i as f64).partial_cmp(f),
        (Value::Number(x), Num::Int(n)) => x.partial_cmp(&(*n as f64)),
        (Value::Number(x), Num::Float(f)) => x.partial_cmp(f),
        _ => None,
    }
}

/// The length `min_len`/`max_len` look at: a string's bytes or a table's
/// raw length.
fn length(v: &Value) -> Option<Value> {
    let n = match v {
        Value::String(s) => s.as_bytes().len(),
        Value::Table(t) => t.raw_len(),
        _ => return None,
    };
    Some(Value::Integer(i64::try_from(n).unwrap_or(i64::MAX)))
}

/// The message of a failing validator, `None` if `v` passes (validators
/// that do not apply to `v`, and unknown ones, pass).
fn validator_failure(val: &Validator, v: &Value) -> Option<&'static str> {
    use std::cmp::Ordering::{Greater, Less};
    match val.name.as_str() {
        "min" => (cmp(v, &num_arg(val)?)? == Less).then_some("value below minimum"),
        "max" => (cmp(v, &num_arg(val)?)? == Greater).then_some("value above maximum"),
        "min_len" => (cmp(&length(v)?, &num_arg(val)?)? == Less).then_some("length below minimum"),
        "max_len" => {
            (cmp(&length(v)?, &num_arg(val)?)? == Greater).then_some("length above maximum")
        }
        "pattern" => {
            let Value::String(s) = v else {
                return None;
            };
            let Some(re) = &val.regex else {
                return Some("invalid regex");
            };
            // Strings go through `Checker::pattern`, which can stop a match.
            (!re.is_match(&s.as_bytes()[..])).then_some("pattern mismatch")
        }
        _ => None,
    }
}
