//! Type values at run time (typed-lua.md §3.5): the read-only table
//! `__warren_types` of one chunk, and the `TypeValue` userdata in it.
//!
//! A type value validates (`T(v)`, `T:is(v)`), instantiates generics
//! (`Box(string)`), reflects (`T:kind()`, `T:fields()`, `T.f`, ...) and
//! compares (`==`, `<=`, `<`). It holds an immutable [`TyRef`] and the
//! [`TypeTable`] its names resolve in; nothing in it reaches kernel state.
//!
//! Security (docs/architecture.md, "Security model"): validation reads user
//! values raw only (`rawget`, `rawlen`, raw `next`), so no user metamethod
//! ever runs; its depth is capped at 64 and it asks the caller's budget
//! every 4,096 visited values. Type values are host userdata with a
//! protected metatable and no setters.

mod check;
mod fast;
mod shape;
#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use mlua::{
    AnyUserData, Function, Lua, MetaMethod, MultiValue, Table, UserData, UserDataFields,
    UserDataMethods, Value,
};
use warren_lua_dialect::ty::{DeclId, Ty, TyRef, TypeTable};

use check::{Checker, Failure, Stop, lua_type};
use shape::{Relate, Side};

/// Asked during a validation; `Some(reason)` stops it.
type BudgetFn = Rc<dyn Fn() -> Option<String>>;

/// The primitive type values every `__warren_types` has.
const PRIMITIVES: [&str; 8] = [
    "string", "integer", "number", "boolean", "any", "unknown", "never", "nil",
];

/// Type methods, usable as `T:m(...)` and `T.m(...)`; they win over field
/// names in `T.f`.
const METHODS: [&str; 12] = [
    "is", "kind", "name", "elem", "key", "val", "inner", "ret", "fields", "variants", "params",
    "tparams",
];

/// Registry key of the kernel's error metatable.
const ERROR_MT_KEY: &str = "warren.error_mt";
/// Registry key of the helpers for the read-only proxy.
const PROXY_KEY: &str = "warren.types.proxy";
/// Registry key of the Lua `__index` and `__call` of type values.
const DISPATCH_KEY: &str = "warren.types.dispatch";

/// What a type value means.
struct Inner {
    ty: TyRef,
    name: Option<String>,
    table: Arc<TypeTable>,
    budget: BudgetFn,
    /// A tuple of return types (`T:ret()` of a function with several
    /// returns): `ty` is then a `Union` holding the members.
    tuple: bool,
    /// How deeply instantiations nest in `ty` (an upper bound: a type
    /// derived from this one keeps it), capped at [`MAX_RUNTIME_INSTANTIATION`].
    depth: u32,
}

/// Deepest nesting of generic instances made at run time (`B(B(B(t)))`):
/// a chain of thousands would be dropped recursively and overflow the
/// worker's stack, taking every tenant down.
const MAX_RUNTIME_INSTANTIATION: u32 = 64;

impl Inner {
    fn new(ty: TyRef, name: Option<String>, table: Arc<TypeTable>, budget: BudgetFn) -> Self {
        Inner {
            ty,
            name,
            table,
            budget,
            tuple: false,
            depth: 0,
        }
    }

    /// A type derived from this one (same table and budget; at most as
    /// deeply nested).
    fn derived(&self, ty: TyRef) -> Inner {
        let mut inner = Inner::new(ty, None, self.table.clone(), self.budget.clone());
        inner.depth = self.depth;
        inner
    }

    /// `tostring(T)`: the name, or the rendered type.
    fn display(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        if self.tuple {
            let Ty::Union(members) = &*self.ty else {
                return "()".to_owned();
            };
            let parts: Vec<String> = members
                .iter()
                .map(|m| shape::render(m, &self.table))
                .collect();
            return format!("({})", parts.join(", "));
        }
        shape::render(&self.ty, &self.table)
    }

    fn members(&self) -> &[TyRef] {
        match &*self.ty {
            Ty::Union(m) if self.tuple => m,
            _ => &[],
        }
    }

    /// The type seen through names, instances and validators.
    fn look(&self) -> Option<TyRef> {
        if self.tuple {
            return None;
        }
        shape::look(&self.ty, &self.table, true)
    }
}

/// A type as a Lua value.
pub(crate) struct TypeValue {
    inner: Rc<Inner>,
}

impl TypeValue {
    fn new(inner: Inner) -> Self {
        Self {
            inner: Rc::new(inner),
        }
    }

    /// A new bound method (index `i` of [`METHODS`]): it captures the
    /// type, not the userdata, so there is no cycle. For `is` this is the
    /// body, called with the value alone once the Lua side has picked it
    /// and the fast path has not accepted it.
    fn method(&self, lua: &Lua, i: usize) -> mlua::Result<Function> {
        let inner = self.inner.clone();
        if i == 0 {
            lua.create_function(move |lua, v: Value| is(lua, &inner, v))
        } else {
            lua.create_function(move |lua, _: MultiValue| reflect(lua, &inner, i))
        }
    }

    /// `T.k` when the Lua `__index` has no cached method: a new bound
    /// method and how to keep it ([`KEEP`] or [`BIND_IS`]), or a record
    /// field's type (or nil) and nothing.
    fn index(&self, lua: &Lua, key: &Value) -> mlua::Result<(Value, Option<i64>)> {
        let Value::String(s) = key else {
            return Ok((Value::Nil, None));
        };
        let bytes = s.as_bytes();
        if let Some(i) = METHODS.iter().position(|m| m.as_bytes() == &*bytes) {
            let keep = if i == 0 { BIND_IS } else { KEEP };
            return Ok((Value::Function(self.method(lua, i)?), Some(keep)));
        }
        let Some(ty) = self.inner.look() else {
            return Ok((Value::Nil, None));
        };
        let (Ty::Record { fields, .. } | Ty::Interface { fields }) = &*ty else {
            return Ok((Value::Nil, None));
        };
        let v = match fields.iter().find(|f| f.name.as_bytes() == &*bytes) {
            Some(f) => Value::UserData(make_value(lua, self.inner.derived(f.ty.clone()))?),
            None => Value::Nil,
        };
        Ok((v, None))
    }

    /// The fast-path plan as Lua values: `(names, slots)` (names a sequence
    /// of field names, or `false` for a check of the value itself), or
    /// `(nil, nil)` when the type is not covered.
    fn plan(&self, lua: &Lua) -> mlua::Result<(Value, Value)> {
        if self.inner.tuple {
            return Ok((Value::Nil, Value::Nil));
        }
        let Some(p) = fast::plan(&self.inner.ty, &self.inner.table) else {
            return Ok((Value::Nil, Value::Nil));
        };
        let names = match p.names {
            Some(names) => Value::Table(lua.create_sequence_from(names)?),
            None => Value::Boolean(false),
        };
        Ok((names, Value::String(lua.create_string(&p.slots)?)))
    }
}

/// [`TypeValue::index`]: cache the method as it is.
const KEEP: i64 = 1;
/// [`TypeValue::index`]: the body of `is`; bind it, then cache it.
const BIND_IS: i64 = 2;

/// The Lua side of type values, made once per VM: `__index` and `__call`.
///
/// - `__index`: a method already bound for this type value is a lookup in
///   a table weakly keyed by the userdata, so `T:is(v)` makes no call into
///   Rust to find `is`; anything else asks [`TypeValue::index`].
/// - `is`: picks the value (the second argument when there are two or
///   more: `T:is(v)`, `T.is(T, v)`; else the first: `T.is(v)`), and
///   returns it at once if [`fast::fast_check`] accepts it; otherwise the
///   body in Rust decides and builds the error.
/// - `__call`: one argument that is not userdata (so not a type: that would
///   instantiate) goes through the same fast path, then [`call_one`];
///   anything else to [`call_impl`]. A failure is raised like `error(msg,
///   2)`: with the calling line's position.
fn dispatch(lua: &Lua) -> mlua::Result<(Function, Function)> {
    if let Some(t) = lua.named_registry_value::<Option<Table>>(DISPATCH_KEY)? {
        return Ok((t.raw_get(1)?, t.raw_get(2)?));
    }
    let slow = lua.create_function(|lua, (this, key): (AnyUserData, Value)| {
        this.borrow::<TypeValue>()?.index(lua, &key)
    })?;
    let plan_of =
        lua.create_function(|lua, this: AnyUserData| this.borrow::<TypeValue>()?.plan(lua))?;
    // SAFETY: `fast_check` is a `lua_CFunction` that only reads its own
    // frame with raw functions that cannot raise (see its comments).
    let fast = unsafe { lua.create_c_function(fast::fast_check)? };
    let one = lua.create_function(call_one)?;
    let imp = lua.create_function(call_impl)?;
    let weak = || -> mlua::Result<Table> {
        let t = lua.create_table()?;
        let mt = lua.create_table_with_capacity(0, 1)?;
        mt.raw_set("__mode", "k")?;
        t.set_metatable(Some(mt))?;
        Ok(t)
    };
    let g = lua.globals();
    let (error, select, ty): (Function, Function, Function) = (
        g.raw_get("error")?,
        g.raw_get("select")?,
        g.raw_get("type")?,
    );
    let (index, call): (Function, Function) =
        lua.load(DISPATCH).set_name("=[warren types]").call((
            slow,
            plan_of,
            fast,
            one,
            imp,
            weak()?,
            weak()?,
            error,
            select,
            ty,
        ))?;
    let cache = lua.create_sequence_from([index.clone(), call.clone()])?;
    lua.set_named_registry_value(DISPATCH_KEY, cache)?;
    Ok((index, call))
}

/// The Lua code of [`dispatch`].
const DISPATCH: &str = r##"
local slow, plan_of, fast, one, impl, cache, plans, error, select, type = ...
local BIND_IS = 2

-- {names, slots} of the fast path, or false.
local function plan(self)
    local p = plans[self]
    if p == nil then
        local names, slots = plan_of(self)
        p = slots ~= nil and {names, slots} or false
        plans[self] = p
    end
    return p
end

local function bind_is(self, body)
    local p = plan(self)
    if not p then
        return function(...)
            if select("#", ...) >= 2 then
                local _, v = ...
                return body(v)
            end
            return body((...))
        end
    end
    local names, slots = p[1], p[2]
    return function(...)
        local v
        if select("#", ...) >= 2 then
            local _
            _, v = ...
        else
            v = ...
        end
        if fast(v, names, slots) then return v, nil end
        return body(v)
    end
end

local function index(self, k)
    local c = cache[self]
    if c ~= nil then
        local m = c[k]
        if m ~= nil then return m end
    end
    local v, keep = slow(self, k)
    if keep ~= nil then
        if keep == BIND_IS then v = bind_is(self, v) end
        if c == nil then
            c = {}
            cache[self] = c
        end
        c[k] = v
    end
    return v
end

local function call(self, ...)
    if select("#", ...) == 1 then
        local v = ...
        if type(v) ~= "userdata" then
            local p = plan(self)
            if p and fast(v, p[1], p[2]) then return v end
        end
        local ok, r = one(self, v)
        if ok then return r end
        if ok == false then error(r, 2) end
    end
    local ok, r = impl(self, ...)
    if ok then return r end
    error(r, 2)
end

return index, call
"##;

impl UserData for TypeValue {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with(MetaMethod::Index, |lua| Ok(dispatch(lua)?.0));
        fields.add_meta_field_with(MetaMethod::Call, |lua| Ok(dispatch(lua)?.1));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| Ok(this.inner.display()));
        methods.add_meta_function(MetaMethod::Eq, |_, (a, b): (Value, Value)| {
            relate(&a, &b, |r, a, b| r.eq(a, b, 0))
        });
        methods.add_meta_function(MetaMethod::Le, |_, (a, b): (Value, Value)| {
            relate(&a, &b, |r, a, b| r.sub(a, b, 0))
        });
        methods.add_meta_function(MetaMethod::Lt, |_, (a, b): (Value, Value)| {
            Ok(relate(&a, &b, |r, a, b| r.sub(a, b, 0))?
                && !relate(&a, &b, |r, a, b| r.eq(a, b, 0))?)
        });
    }
}

/// The type value inside `v`, if it is one.
fn type_of(v: &Value) -> Option<Rc<Inner>> {
    match v {
        Value::UserData(ud) => ud.borrow::<TypeValue>().ok().map(|t| t.inner.clone()),
        _ => None,
    }
}

/// Compares two type values; `false` when either is not one.
fn relate(
    a: &Value,
    b: &Value,
    f: impl Fn(&mut Relate<'_>, &TyRef, &TyRef) -> bool,
) -> mlua::Result<bool> {
    let (Some(a), Some(b)) = (type_of(a), type_of(b)) else {
        return Ok(false);
    };
    let mut rel = Relate::new(Side { table: &a.table }, Side { table: &b.table });
    Ok(match (a.tuple, b.tuple) {
        (false, false) => f(&mut rel, &a.ty, &b.ty),
        (true, true) => {
            a.members().len() == b.members().len()
                && a.members()
                    .iter()
                    .zip(b.members())
                    .all(|(x, y)| f(&mut rel, x, y))
        }
        _ => false,
    })
}

/// The userdata for a type: the per-VM singleton for an unnamed
/// primitive, a fresh value otherwise.
fn make_value(lua: &Lua, mut inner: Inner) -> mlua::Result<AnyUserData> {
    if inner.name.is_none() && !inner.tuple {
        if let Some(p) = shape::primitive_name(&inner.ty) {
            return primitive(lua, p);
        }
        if let Ty::Named { name, .. } = &*inner.ty {
            inner.name = Some(name.clone());
        }
    }
    lua.create_userdata(TypeValue::new(inner))
}

fn primitive_key(name: &str) -> &'static str {
    match name {
        "string" => "warren.types.string",
        "integer" => "warren.types.integer",
        "number" => "warren.types.number",
        "boolean" => "warren.types.boolean",
        "any" => "warren.types.any",
        "unknown" => "warren.types.unknown",
        "never" => "warren.types.never",
        _ => "warren.types.nil",
    }
}

/// The per-VM singleton of a primitive type (cached in the registry, so
/// `string == string` and types as table keys hold across chunks).
fn primitive(lua: &Lua, name: &str) -> mlua::Result<AnyUserData> {
    let key = primitive_key(name);
    if let Some(ud) = lua.named_registry_value::<Option<AnyUserData>>(key)? {
        return Ok(ud);
    }
    let ty = match name {
        "string" => Ty::String,
        "integer" => Ty::Integer,
        "number" => Ty::Number,
        "boolean" => Ty::Boolean,
        "any" => Ty::Any,
        "unknown" => Ty::Unknown,
        "never" => Ty::Never,
        _ => Ty::Nil,
    };
    // A primitive visits one value: it never reaches a budget poll, so it
    // keeps no chunk's budget alive.
    let ud = lua.create_userdata(TypeValue::new(Inner::new(
        Arc::new(ty),
        None,
        Arc::new(TypeTable::default()),
        Rc::new(|| None),
    )))?;
    lua.set_named_registry_value(key, &ud)?;
    Ok(ud)
}

/// An `errors` object as the kernel makes it (raw fields, the kernel's
/// metatable from the registry).
fn error_object(lua: &Lua, kind: &str, message: &str, f: Option<&Failure>) -> mlua::Result<Table> {
    let e = lua.create_table_with_capacity(0, 6)?;
    e.raw_set("_kind", kind)?;
    e.raw_set("_message", message)?;
    e.raw_set("_retryable", false)?;
    if let Some(f) = f {
        let d = lua.create_table_with_capacity(0, 4)?;
        let path = f.path();
        if !path.is_empty() {
            d.raw_set("field", path)?;
        }
        for (k, v) in [
            ("expected", &f.expected),
            ("got", &f.got),
            ("constraint", &f.constraint),
        ] {
            if let Some(v) = v {
                d.raw_set(k, v.as_str())?;
            }
        }
        e.raw_set("_details", d)?;
    }
    e.raw_set("_stack", "")?;
    if let Some(mt) = lua.named_registry_value::<Option<Table>>(ERROR_MT_KEY)? {
        e.set_metatable(Some(mt))?;
    }
    Ok(e)
}

fn budget_error(lua: &Lua, reason: &str) -> mlua::Result<Table> {
    error_object(
        lua,
        "RateLimited",
        &format!("validation stopped: {reason}"),
        None,
    )
}

/// `T:is(v)`: `v, nil` or `nil, err`.
fn is(lua: &Lua, t: &Inner, v: Value) -> mlua::Result<(Value, Value)> {
    if t.tuple {
        let msg = format!("expected {}, got {}", t.display(), lua_type(&v));
        return Ok((
            Value::Nil,
            Value::Table(error_object(lua, "Invalid", &msg, None)?),
        ));
    }
    let mut c = Checker::new(lua, &t.table, &*t.budget);
    let name_hint;
    let hint = match &t.name {
        // An instance made by `Box(string)` is named like its generic.
        Some(_) if matches!(&*t.ty, Ty::Inst { .. }) => {
            name_hint = Arc::new(Ty::Opaque(t.display()));
            Some(&*name_hint)
        }
        _ => None,
    };
    match c.run(&t.ty, &v, hint, true) {
        Ok(()) => Ok((v, Value::Nil)),
        Err(Stop::Fail(f)) => {
            let e = error_object(lua, "Invalid", &f.message(), Some(&f))?;
            Ok((Value::Nil, Value::Table(e)))
        }
        Err(Stop::Quiet) => {
            let msg = format!("expected {}, got {}", t.display(), lua_type(&v));
            Ok((
                Value::Nil,
                Value::Table(error_object(lua, "Invalid", &msg, None)?),
            ))
        }
        Err(Stop::Budget(r)) => Ok((Value::Nil, Value::Table(budget_error(lua, &r)?))),
        Err(Stop::Lua(e)) => Err(e),
    }
}

/// The body of `__call`: `(true, result)` or `(false, message or error
/// object)`; the Lua `__call` raises the latter at the caller's level.
fn call_impl(lua: &Lua, args: MultiValue) -> mlua::Result<(bool, Value)> {
    let Some(t) = args.front().and_then(type_of) else {
        return Ok((false, Value::String(lua.create_string("not a type")?)));
    };
    let rest = args.iter().skip(1);
    let types = rest.clone().filter(|a| type_of(a).is_some()).count();
    let n = args.len().saturating_sub(1);
    if types > 0 && types == n {
        let targs: Vec<Rc<Inner>> = rest.filter_map(type_of).collect();
        return match instantiate(&t, &targs) {
            Ok(inner) => Ok((true, Value::UserData(make_value(lua, inner)?))),
            Err(msg) => Ok((false, Value::String(lua.create_string(&msg)?))),
        };
    }
    if types > 0 {
        let msg = format!(
            "type {}: arguments must be all types (to instantiate) or one value (to validate)",
            t.display()
        );
        return Ok((false, Value::String(lua.create_string(&msg)?)));
    }
    validate(lua, &t, args.get(1).cloned().unwrap_or(Value::Nil))
}

/// `T(v)` with one argument: `None` when `v` is a type (an instantiation:
/// the Lua `__call` then asks [`call_impl`]), else as [`validate`].
fn call_one(lua: &Lua, (this, v): (AnyUserData, Value)) -> mlua::Result<(Option<bool>, Value)> {
    if type_of(&v).is_some() {
        return Ok((None, Value::Nil));
    }
    let t = this.borrow::<TypeValue>()?.inner.clone();
    let (ok, v) = validate(lua, &t, v)?;
    Ok((Some(ok), v))
}

/// `T(v)`: `(true, v)` or `(false, message or error object)`.
fn validate(lua: &Lua, t: &Inner, v: Value) -> mlua::Result<(bool, Value)> {
    if t.tuple {
        let msg = format!("expected {}, got {}", t.display(), lua_type(&v));
        return Ok((false, Value::String(lua.create_string(&msg)?)));
    }
    let mut c = Checker::new(lua, &t.table, &*t.budget);
    match c.run(&t.ty, &v, None, false) {
        Ok(()) => Ok((true, v)),
        Err(Stop::Quiet | Stop::Fail(_)) => {
            let msg = format!("expected {}, got {}", t.display(), lua_type(&v));
            Ok((false, Value::String(lua.create_string(&msg)?)))
        }
        Err(Stop::Budget(r)) => Ok((false, Value::Table(budget_error(lua, &r)?))),
        Err(Stop::Lua(e)) => Err(e),
    }
}

/// `Box(A, B)`: the instance of a generic declaration, named like it.
/// Arguments from another chunk's table are imported (their declarations
/// appended, ids moved).
fn instantiate(t: &Inner, args: &[Rc<Inner>]) -> Result<Inner, String> {
    let not_generic = || format!("type {} is not generic", t.display());
    let Ty::Named { decl, .. } = &*t.ty else {
        return Err(not_generic());
    };
    let decl: DeclId = *decl;
    let Some(Ty::Generic { params, .. }) = t.table.get(decl).map(|d| &*d.ty) else {
        return Err(not_generic());
    };
    if params.len() != args.len() {
        return Err(format!(
            "generic {} expects {} type arguments, got {}",
            t.display(),
            params.len(),
            args.len()
        ));
    }
    if args.iter().any(|a| a.tuple) {
        return Err(format!(
            "generic {}: a tuple is not a type argument",
            t.display()
        ));
    }
    let depth = 1 + args
        .iter()
        .map(|a| a.depth)
        .chain([t.depth])
        .max()
        .unwrap_or(0);
    if depth > MAX_RUNTIME_INSTANTIATION {
        return Err(format!(
            "generic {}: instances nest deeper than {MAX_RUNTIME_INSTANTIATION}",
            t.display()
        ));
    }
    let mut tys = Vec::with_capacity(args.len());
    for a in args {
        // A type declared in another chunk would have to bring that chunk's
        // declarations along (copied per instance, host memory the process
        // is not charged for, doubling when chained): refused.
        if !Arc::ptr_eq(&a.table, &t.table) && shape::mentions_decls(&a.ty) {
            return Err(format!(
                "generic {}: a type argument declared in another chunk is not supported",
                t.display()
            ));
        }
        tys.push(a.ty.clone());
    }
    let mut inner = Inner::new(
        Arc::new(Ty::Inst {
            base: decl,
            args: tys,
        }),
        t.name.clone(),
        t.table.clone(),
        t.budget.clone(),
    );
    inner.depth = depth;
    Ok(inner)
}

/// The value of a type or nil.
fn type_or_nil(lua: &Lua, t: &Inner, ty: Option<&TyRef>) -> mlua::Result<Value> {
    match ty {
        Some(ty) => make_value(lua, t.derived(ty.clone())).map(Value::UserData),
        None => Ok(Value::Nil),
    }
}

/// An iterator over `(name?, type?)` items: yields `name, type` when
/// `named`, else `type`.
fn iterator(
    lua: &Lua,
    t: &Inner,
    items: Vec<(Option<String>, Option<TyRef>)>,
    named: bool,
) -> mlua::Result<Value> {
    let pos = Cell::new(0usize);
    let base = Rc::new(t.derived(Arc::new(Ty::Any)));
    lua.create_function(move |lua, _: MultiValue| {
        let i = pos.get();
        let Some((name, ty)) = items.get(i) else {
            return Ok(MultiValue::from_iter([Value::Nil]));
        };
        pos.set(i + 1);
        let tv = type_or_nil(lua, &base, ty.as_ref())?;
        Ok(if named {
            let name = match name {
                Some(n) => Value::String(lua.create_string(n)?),
                None => Value::Nil,
            };
            MultiValue::from_iter([name, tv])
        } else {
            MultiValue::from_iter([tv])
        })
    })
    .map(Value::Function)
}

/// The reflection methods (index `i` of [`METHODS`], not `is`).
fn reflect(lua: &Lua, t: &Inner, i: usize) -> mlua::Result<Value> {
    let method = METHODS.get(i).copied().unwrap_or("");
    match method {
        "kind" => {
            let k = if t.tuple {
                "tuple"
            } else {
                shape::kind(&t.ty, &t.table)
            };
            return lua.create_string(k).map(Value::String);
        }
        "name" => {
            return match &t.name {
                Some(n) => lua.create_string(n).map(Value::String),
                None => Ok(Value::Nil),
            };
        }
        "variants" if t.tuple => {
            let items = t
                .members()
                .iter()
                .map(|m| (None, Some(m.clone())))
                .collect();
            return iterator(lua, t, items, false);
        }
        _ => {}
    }
    let Some(ty) = t.look() else {
        return Ok(Value::Nil);
    };
    match (method, &*ty) {
        ("elem", Ty::Array { elem, .. }) => type_or_nil(lua, t, Some(elem)),
        ("key", Ty::Map { key, .. }) => type_or_nil(lua, t, Some(key)),
        ("val", Ty::Map { val, .. }) => type_or_nil(lua, t, Some(val)),
        ("inner", Ty::Optional(inner)) => type_or_nil(lua, t, Some(inner)),
        ("ret", Ty::Func { rets, .. }) => match rets.as_slice() {
            [] => Ok(Value::Nil),
            [one] => type_or_nil(lua, t, Some(one)),
            many => {
                let mut tuple = t.derived(Arc::new(Ty::Union(many.to_vec())));
                tuple.tuple = true;
                lua.create_userdata(TypeValue::new(tuple))
                    .map(Value::UserData)
            }
        },
        ("fields", Ty::Record { fields, .. } | Ty::Interface { fields }) => {
            let items = fields
                .iter()
                .map(|f| (Some(f.name.clone()), Some(f.ty.clone())))
                .collect();
            iterator(lua, t, items, true)
        }
        ("variants", Ty::Union(members)) => {
            let items = members.iter().map(|m| (None, Some(m.clone()))).collect();
            iterator(lua, t, items, false)
        }
        ("variants", Ty::Optional(inner)) => {
            let items = vec![(None, Some(inner.clone())), (None, Some(Arc::new(Ty::Nil)))];
            iterator(lua, t, items, false)
        }
        ("params", Ty::Func { params, .. }) => {
            let items = params.iter().map(|p| (None, Some(p.ty.clone()))).collect();
            iterator(lua, t, items, false)
        }
        ("tparams", Ty::Generic { params, .. }) => {
            let items = params
                .iter()
                .map(|p| (Some(p.name.clone()), p.bound.clone()))
                .collect();
            iterator(lua, t, items, true)
        }
        _ => Ok(Value::Nil),
    }
}

/// The Lua helpers of the read-only proxy, made once per VM: the
/// `__newindex` that raises, and a maker of `__pairs` for an inner table.
fn proxy_helpers(lua: &Lua) -> mlua::Result<(Function, Function)> {
    if let Some(t) = lua.named_registry_value::<Option<Table>>(PROXY_KEY)? {
        return Ok((t.raw_get(1)?, t.raw_get(2)?));
    }
    let g = lua.globals();
    let error: Function = g.raw_get("error")?;
    let next: Function = g.raw_get("next")?;
    let (ro, pairs): (Function, Function) = lua
        .load(
            "local error, next = ...\n\
             local function ro() error(\"__warren_types is read-only\", 2) end\n\
             local function pairs_of(inner)\n\
             return function()\n\
             local k\n\
             return function()\n\
             local v\n\
             k, v = next(inner, k)\n\
             return k, v\n\
             end\n\
             end\n\
             end\n\
             return ro, pairs_of",
        )
        .set_name("=[warren types]")
        .call((error, next))?;
    let cache = lua.create_sequence_from([ro.clone(), pairs.clone()])?;
    lua.set_named_registry_value(PROXY_KEY, cache)?;
    Ok((ro, pairs))
}

/// Builds the read-only table `__warren_types` for one chunk in `lua`: its
/// top-level declarations by name (TypeValue userdata) plus the primitive
/// type values (`string integer number boolean any unknown never nil`;
/// per-VM singletons cached in the registry so `T == T` holds across
/// chunks).
///
/// `budget` is called every 4,096 visited values during a validation;
/// `Some(reason)` stops it with the error `validation stopped: <reason>`
/// (kind `RateLimited`). The table is a proxy: writing to it raises, its
/// metatable is protected, and iterating it yields only names and type
/// values (never the inner table).
pub(crate) fn types_table(
    lua: &Lua,
    table: &Arc<TypeTable>,
    budget: Rc<dyn Fn() -> Option<String>>,
) -> mlua::Result<Table> {
    let inner = lua.create_table()?;
    for p in PRIMITIVES {
        inner.raw_set(p, primitive(lua, p)?)?;
    }
    for (id, decl) in table.top_level() {
        let ud = lua.create_userdata(TypeValue::new(Inner::new(
            Arc::new(Ty::Named {
                name: decl.name.clone(),
                decl: id,
            }),
            Some(decl.name.clone()),
            table.clone(),
            budget.clone(),
        )))?;
        inner.raw_set(decl.name.as_str(), ud)?;
    }
    let (ro, pairs_of) = proxy_helpers(lua)?;
    let pairs: Function = pairs_of.call(&inner)?;
    let mt = lua.create_table_with_capacity(0, 4)?;
    mt.raw_set("__index", inner)?;
    mt.raw_set("__newindex", ro)?;
    mt.raw_set("__pairs", pairs)?;
    mt.raw_set("__metatable", false)?;
    let proxy = lua.create_table()?;
    proxy.set_metatable(Some(mt))?;
    Ok(proxy)
}
