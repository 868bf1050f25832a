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
mod shape;
#[cfg(test)]
mod tests;

use std::cell::{Cell, RefCell};
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

/// What a type value means.
struct Inner {
    ty: TyRef,
    name: Option<String>,
    table: Arc<TypeTable>,
    budget: BudgetFn,
    /// A tuple of return types (`T:ret()` of a function with several
    /// returns): `ty` is then a `Union` holding the members.
    tuple: bool,
}

impl Inner {
    /// A type derived from this one (same table and budget).
    fn derived(&self, ty: TyRef) -> Inner {
        Inner {
            ty,
            name: None,
            table: self.table.clone(),
            budget: self.budget.clone(),
            tuple: false,
        }
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
    /// Bound methods, made on first use (they capture the type, not the
    /// userdata, so there is no cycle).
    methods: RefCell<[Option<Function>; METHODS.len()]>,
}

impl TypeValue {
    fn new(inner: Inner) -> Self {
        Self {
            inner: Rc::new(inner),
            methods: RefCell::new(Default::default()),
        }
    }

    fn method(&self, lua: &Lua, i: usize) -> mlua::Result<Function> {
        if let Some(f) = self.methods.borrow().get(i).and_then(Option::as_ref) {
            return Ok(f.clone());
        }
        let inner = self.inner.clone();
        let f = if i == 0 {
            lua.create_function(move |lua, args: MultiValue| {
                let v = pick(&args);
                is(lua, &inner, v)
            })?
        } else {
            lua.create_function(move |lua, _: MultiValue| reflect(lua, &inner, i))?
        };
        if let Some(slot) = self.methods.borrow_mut().get_mut(i) {
            *slot = Some(f.clone());
        }
        Ok(f)
    }
}

/// The value a method is about: the second argument when there are two or
/// more (`T:m(v)`, `T.m(T, v)`), else the first (`T.m(v)`).
fn pick(args: &MultiValue) -> Value {
    let i = usize::from(args.len() >= 2);
    args.get(i).cloned().unwrap_or(Value::Nil)
}

impl UserData for TypeValue {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field_with(MetaMethod::Call, call_wrapper);
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::Index, |lua, this, key: Value| {
            let Value::String(s) = key else {
                return Ok(Value::Nil);
            };
            let bytes = s.as_bytes();
            if let Some(i) = METHODS.iter().position(|m| m.as_bytes() == &*bytes) {
                return this.method(lua, i).map(Value::Function);
            }
            let Some(ty) = this.inner.look() else {
                return Ok(Value::Nil);
            };
            let (Ty::Record { fields, .. } | Ty::Interface { fields }) = &*ty else {
                return Ok(Value::Nil);
            };
            match fields.iter().find(|f| f.name.as_bytes() == &*bytes) {
                Some(f) => make_value(lua, this.inner.derived(f.ty.clone())).map(Value::UserData),
                None => Ok(Value::Nil),
            }
        });
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
    let ud = lua.create_userdata(TypeValue::new(Inner {
        ty: Arc::new(ty),
        name: None,
        table: Arc::new(TypeTable::default()),
        budget: Rc::new(|| None),
        tuple: false,
    }))?;
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
/// object)`; the Lua wrapper raises the latter at the caller's level.
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
    let v = args.get(1).cloned().unwrap_or(Value::Nil);
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

/// `__call` as a Lua function, so that its error is raised like
/// `error(msg, 2)`: with the calling line's position.
fn call_wrapper(lua: &Lua) -> mlua::Result<Function> {
    let imp = lua.create_function(call_impl)?;
    let error: Function = lua.globals().raw_get("error")?;
    lua.load(
        "local impl, error = ...\n\
         return function(...)\n\
         local ok, v = impl(...)\n\
         if ok then return v end\n\
         error(v, 2)\n\
         end",
    )
    .set_name("=[warren types]")
    .call((imp, error))
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
    let mut merged: Option<TypeTable> = None;
    let mut tys = Vec::with_capacity(args.len());
    for a in args {
        if Arc::ptr_eq(&a.table, &t.table) || !shape::mentions_decls(&a.ty) {
            tys.push(a.ty.clone());
            continue;
        }
        let m = merged.get_or_insert_with(|| (*t.table).clone());
        let offset = u32::try_from(m.decls.len()).map_err(|_| "too many types".to_owned())?;
        for d in &a.table.decls {
            let mut d = d.clone();
            d.ty = shape::remap(&d.ty, offset);
            d.top_level = false;
            m.decls.push(d);
        }
        tys.push(shape::remap(&a.ty, offset));
    }
    Ok(Inner {
        ty: Arc::new(Ty::Inst {
            base: decl,
            args: tys,
        }),
        name: t.name.clone(),
        table: merged.map_or_else(|| t.table.clone(), Arc::new),
        budget: t.budget.clone(),
        tuple: false,
    })
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
        let ud = lua.create_userdata(TypeValue::new(Inner {
            ty: Arc::new(Ty::Named {
                name: decl.name.clone(),
                decl: id,
            }),
            name: Some(decl.name.clone()),
            table: table.clone(),
            budget: budget.clone(),
            tuple: false,
        }))?;
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
