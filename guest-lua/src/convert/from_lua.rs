//! The walk behind [`Converter`](super::Converter): a Lua value read on the
//! Lua stack in C-API code, where mlua's iteration made a reference for
//! every string and table it passed (about 280 ns an entry).
//!
//! Guarantees, beyond the module's: the walk calls only C API functions
//! that cannot raise (the vendored Lua's `warren_entry` and
//! `warren_pushentry` on an unchanged table ([`entry`]), `lua_rawget` and
//! `lua_rawgeti` with keys already in the VM, type tests and reads of
//! strings that are strings), so it allocates nothing in the VM and no Lua
//! error can unwind through its frames; the metatable field names it looks
//! up are kept in a registry table made once per VM ([`keys`]); the Lua
//! stack is grown before each level, within [`MAX_DEPTH`] levels.

use std::ffi::{c_int, c_void};

use crate::machine::fast;
use mlua::ffi::{self, lua_State};
use mlua::{Lua, Value as LuaValue};
use warren_core::Value;

use super::{
    BYTES_PER_TABLE, ERROR_KEY, ERROR_TAG, Failure, MAX_DEPTH, RUNTIME_OBJECT_TAG, Scalar, Walk,
    count_scalar, error_field, host_kind, is_identifier,
};

mod pack;

use super::entry::{Entries, warren_tableslots};
pub(super) use pack::pack_at;

/// The registry key (its address) of the table of field names.
static KEYS: u8 = 0;

/// Positions in the table of field names.
const K_TAG: i64 = 1;
const K_ERROR_TAG: i64 = 2;
const K_KIND: i64 = 3;
const K_MESSAGE: i64 = 4;
const K_RETRYABLE: i64 = 5;
const K_DETAILS: i64 = 6;
const K_TEXT: i64 = 7;
const NAMES: [&std::ffi::CStr; 7] = [
    RUNTIME_OBJECT_TAG,
    ERROR_TAG,
    error_field::KIND,
    error_field::MESSAGE,
    error_field::RETRYABLE,
    error_field::DETAILS,
    error_field::TEXT,
];

/// Stack index of the table of field names during a walk.
const KEYS_AT: c_int = 2;

/// Stack slots one level uses at most: a key, a value, a metatable and a
/// field read from it, and room for the error fields.
const SLOTS_PER_LEVEL: c_int = 8;

/// Copies `v` as `walk` says; mlua errors only if the VM cannot make the
/// table of field names (out of memory, before anything is copied).
pub(super) fn walk(
    lua: &Lua,
    v: &LuaValue,
    walk: &mut Walk,
) -> mlua::Result<Result<Value, Failure>> {
    let mut out = None;
    // SAFETY: the closure runs in mlua's protected call with `v` at index
    // 1. Only `keys` may raise (it allocates), and it runs before anything
    // that needs dropping exists; the walk itself raises nothing (see the
    // module doc).
    unsafe {
        lua.exec_raw::<()>(v, |l| {
            keys(l);
            let mut raw = Raw {
                l,
                walk,
                keys: KEYS_AT,
                wide: Vec::new(),
            };
            out = Some(raw.value(1));
            fast::settop(l, 0);
        })?;
    }
    Ok(out.unwrap_or_else(|| Err(Failure::new("the value could not be read"))))
}

/// Copies the value at absolute index `idx` as `walk` says, the table of
/// field names being at absolute index `keys` (pushed by [`push_keys`]).
///
/// # Safety
///
/// `l` is a running state whose slot `idx` holds a value; the walk
/// raises nothing (see the module doc), so it may run outside a
/// protected call.
pub(super) unsafe fn walk_at(
    l: *mut lua_State,
    idx: c_int,
    keys: c_int,
    walk: &mut Walk,
) -> Result<Value, Failure> {
    let mut raw = Raw {
        l,
        walk,
        keys,
        wide: Vec::new(),
    };
    // SAFETY: see above.
    unsafe { raw.value(idx) }
}

/// Pushes the table of field names (see [`walk_at`]), making it on first
/// use, when it may raise a memory error.
///
/// # Safety
///
/// A running state with room for one value.
pub(crate) unsafe fn push_keys(l: *mut lua_State) {
    // SAFETY: see above.
    unsafe { keys(l) }
}

/// Pushes the table of field names (see [`walk_at`]) and returns true
/// once it has been made; pushes nothing and returns false before. Never
/// allocates, never raises.
///
/// # Safety
///
/// A running state with room for one value.
pub(crate) unsafe fn push_keys_made(l: *mut lua_State) -> bool {
    // SAFETY: a raw registry read with a light userdata key.
    unsafe {
        let at = std::ptr::from_ref(&KEYS).cast::<c_void>();
        if ffi::lua_rawgetp(l, ffi::LUA_REGISTRYINDEX, at) == ffi::LUA_TTABLE {
            return true;
        }
        fast::pop(l, 1);
        false
    }
}

/// Pushes the table of field names at [`KEYS_AT`], making it on first use.
///
/// # Safety
///
/// In a protected call, with the value at index 1 only.
unsafe fn keys(l: *mut lua_State) {
    // SAFETY: raw registry access with a light userdata key; allocation
    // (first use only) may raise, which the protected call catches.
    unsafe {
        let at = std::ptr::from_ref(&KEYS).cast::<c_void>();
        if ffi::lua_rawgetp(l, ffi::LUA_REGISTRYINDEX, at) != ffi::LUA_TTABLE {
            fast::pop(l, 1);
            ffi::lua_createtable(l, 7, 0);
            for (i, name) in (1..).zip(NAMES) {
                ffi::lua_pushstring(l, name.as_ptr());
                ffi::lua_rawseti(l, -2, i);
            }
            fast::pushvalue(l, -1);
            ffi::lua_rawsetp(l, ffi::LUA_REGISTRYINDEX, at);
        }
    }
}

struct Raw<'a> {
    l: *mut lua_State,
    walk: &'a mut Walk,
    /// Where the table of field names is on the stack.
    keys: c_int,
    /// Maps of more than 15 entries an encoding wrote with a one-byte
    /// header: its position and the count (`pack`).
    wide: Vec<(usize, usize)>,
}

impl Raw<'_> {
    /// The value at absolute index `idx`.
    unsafe fn value(&mut self, idx: c_int) -> Result<Value, Failure> {
        // SAFETY: type tests and reads of the slot `idx`, which holds a value.
        unsafe {
            let l = self.l;
            Ok(match fast::type_of(l, idx) {
                ffi::LUA_TNIL => {
                    self.walk.count(1)?;
                    Value::Nil
                }
                ffi::LUA_TBOOLEAN => {
                    self.walk.count(1)?;
                    Value::Bool(fast::toboolean(l, idx) != 0)
                }
                ffi::LUA_TNUMBER => {
                    self.walk.count(9)?;
                    if ffi::lua_isinteger(l, idx) != 0 {
                        Value::Int(fast::tointeger(l, idx))
                    } else {
                        Value::Float(ffi::lua_tonumberx(l, idx, std::ptr::null_mut()))
                    }
                }
                ffi::LUA_TSTRING => {
                    let bytes = string(l, idx);
                    self.walk.count(5 + bytes.len())?;
                    Value::Str(bytes.to_vec())
                }
                ffi::LUA_TTABLE => self.table(idx)?,
                ffi::LUA_TUSERDATA => return Err(self.userdata(idx)),
                t => return Err(Failure::new(format!("{} cannot be sent", type_name(t)))),
            })
        }
    }

    /// The refusal of the userdata at absolute index `idx`: a runtime
    /// object made as userdata (a channel) is named by its tag.
    unsafe fn userdata(&mut self, idx: c_int) -> Failure {
        // SAFETY: `metatable` pushes and pops at most three values.
        unsafe {
            if fast::has_room(self.l, 3) != 0
                && let Err(name) = self.metatable(idx)
            {
                return Failure::new(format!("{name} cannot be sent"));
            }
            Failure::new("userdata cannot be sent")
        }
    }

    /// The table at absolute index `idx`.
    unsafe fn table(&mut self, idx: c_int) -> Result<Value, Failure> {
        // SAFETY: as `value`; `enter` grows the stack.
        unsafe {
            let is_error = self.enter(idx)?;
            let result = if is_error {
                self.error(idx)
            } else {
                self.entries(idx)
            };
            self.walk.open.pop();
            result
        }
    }

    /// Counts the key at `k` as `wire_size` counts it: a string 5 and its
    /// length, a boolean 1, a number 9; an index (a key in `1..=#t`)
    /// nothing yet: free in an array, counted by the caller if its table
    /// turns out a map. Another key counts 9 here and is refused later.
    unsafe fn count_key(&mut self, k: c_int, index: bool) -> Result<(), Failure> {
        // SAFETY: type tests and a string's length.
        unsafe {
            match fast::type_of(self.l, k) {
                ffi::LUA_TSTRING => self.walk.count(5 + string(self.l, k).len()),
                ffi::LUA_TBOOLEAN => self.walk.count(1),
                _ if index => Ok(()),
                _ => self.walk.count(9),
            }
        }
    }

    /// Enters the table at absolute index `idx`: refuses a cycle, nesting
    /// past [`MAX_DEPTH`], a runtime object and a value of more tables
    /// than the budget allows, counts its own 5 bytes, grows the stack for
    /// a level and opens it (the caller pops `walk.open` when done).
    /// Whether it is an error object.
    unsafe fn enter(&mut self, idx: c_int) -> Result<bool, Failure> {
        // SAFETY: as `value`.
        unsafe {
            let ptr = fast::topointer(self.l, idx);
            if self.walk.open.contains(ptr) {
                return Err(Failure::new("cycle: the table contains itself"));
            }
            if self.walk.open.len() >= MAX_DEPTH || fast::has_room(self.l, SLOTS_PER_LEVEL) == 0 {
                return Err(Failure::new(format!(
                    "nesting deeper than {MAX_DEPTH} levels cannot be sent"
                )));
            }
            let is_error = match self.metatable(idx) {
                Ok(is_error) => is_error,
                Err(name) => return Err(Failure::new(format!("{name} cannot be sent"))),
            };
            let slots = warren_tableslots(self.l, idx);
            let walk = &mut *self.walk;
            walk.entered += 1;
            walk.count(5)?;
            walk.read_slots(slots)?;
            walk.tables += 1;
            if walk.tables > (walk.budget.bytes / BYTES_PER_TABLE).max(256) {
                let mut failure = Failure::new(format!(
                    "the value has more tables than {} allows ({} bytes)",
                    walk.budget.name, walk.budget.bytes
                ));
                failure.over_budget = true;
                return Err(failure);
            }
            walk.open.push(ptr);
            Ok(is_error)
        }
    }

    /// Whether the table at `idx` is an error object; `Err(name)` for a
    /// runtime object (its metatable's tag, a string or number, names it).
    unsafe fn metatable(&mut self, idx: c_int) -> Result<bool, String> {
        // SAFETY: `lua_getmetatable` and raw gets with keys from the names
        // table run no metamethod and allocate nothing.
        unsafe {
            let l = self.l;
            if ffi::lua_getmetatable(l, idx) == 0 {
                return Ok(false);
            }
            let tag = field(l, self.keys, K_TAG);
            let name = match tag {
                ffi::LUA_TSTRING => std::str::from_utf8(string(l, -1)).ok().map(str::to_owned),
                ffi::LUA_TNUMBER if ffi::lua_isinteger(l, -1) != 0 => {
                    Some(fast::tointeger(l, -1).to_string())
                }
                ffi::LUA_TNUMBER => {
                    Some(ffi::lua_tonumberx(l, -1, std::ptr::null_mut()).to_string())
                }
                _ => None,
            };
            fast::pop(l, 1);
            let is_error =
                field(l, self.keys, K_ERROR_TAG) != ffi::LUA_TNIL && fast::toboolean(l, -1) != 0;
            fast::pop(l, 2);
            name.map_or(Ok(is_error), Err)
        }
    }

    /// A table that is not an error object: an array when its keys are
    /// exactly `1..=#t`, else a map.
    unsafe fn entries(&mut self, idx: c_int) -> Result<Value, Failure> {
        // SAFETY: a traversal in place of a table this walk does not
        // change (see `entry`); an entry that needs the stack is pushed
        // (room made by `enter`) and popped when placed.
        unsafe {
            let l = self.l;
            // The border may be anything up to 2^63 (a few keys can make it
            // 2^44): it is compared with, never allocated from.
            let len = ffi::lua_rawlen(l, idx);
            let mut placed = Placed::default();
            let mut entries = Entries::new(idx);
            while entries.next(l) {
                if let (Some(k), Some(v)) = (entries.key.scalar(), entries.value.scalar()) {
                    let index = entries.key.index(len);
                    self.walk.count(entries.key.count(index.is_some()))?;
                    let value = count_scalar(v, self.walk).map_err(|f| at_entry(l, &entries, f))?;
                    self.place(&mut placed, index, value, || Ok(scalar_key(k)))?;
                    continue;
                }
                entries.push(l);
                let (k, v) = (fast::gettop(l) - 1, fast::gettop(l));
                let index = index_key(l, k, len);
                self.count_key(k, index.is_some())?;
                let value = self.value(v).map_err(|f| f.at(segment(l, k)))?;
                self.place(&mut placed, index, value, || key_value(l, k))?;
                fast::pop(l, 2);
            }
            let Placed {
                mut items,
                mut map,
                is_array,
            } = placed;
            if !is_array || items.len() != len || len == 0 {
                self.move_to_map(&mut items, &mut map)?;
                return Ok(Value::Map(map));
            }
            let mut array = vec![Value::Nil; len];
            for (i, value) in items {
                if let Some(slot) = usize::try_from(i - 1).ok().and_then(|i| array.get_mut(i)) {
                    *slot = value;
                }
            }
            Ok(Value::Array(array))
        }
    }

    /// Places an entry's `value` (its key's `index` in `1..=#t`, if it
    /// is one): among the items while every key so far is an index, else
    /// in the map under `key()` (counted 9 bytes more for an index), the
    /// items moved there first. A key that cannot be sent fails here,
    /// after its value, as it always has.
    fn place(
        &mut self,
        placed: &mut Placed,
        index: Option<i64>,
        value: Value,
        key: impl FnOnce() -> Result<Value, Failure>,
    ) -> Result<(), Failure> {
        if let (true, Some(i)) = (placed.is_array, index) {
            placed.items.push((i, value));
            return Ok(());
        }
        if placed.is_array {
            placed.is_array = false;
            self.move_to_map(&mut placed.items, &mut placed.map)?;
        }
        if index.is_some() {
            self.walk.count(9)?;
        }
        placed.map.push((key()?, value));
        Ok(())
    }

    /// An error object as its tagged map; its fields are read raw and
    /// checked (a process may have rawset them).
    unsafe fn error(&mut self, idx: c_int) -> Result<Value, Failure> {
        // SAFETY: raw gets of fields by names from the names table, each
        // popped after it is read.
        unsafe {
            let (l, keys) = (self.l, self.keys);
            let text = |key: i64| {
                let bytes = match raw_field(l, keys, idx, key) {
                    ffi::LUA_TSTRING => string(l, -1).to_vec(),
                    _ => Vec::new(),
                };
                fast::pop(l, 1);
                bytes
            };
            let (kind, message) = (host_kind(text(K_KIND)), text(K_MESSAGE));
            // `wire_size` of the tagged map below without its details and
            // its own 5 (counted on entering it): `@error` 11 and `true` 1;
            // `kind` 9 and 5; `message` 12 and 5; `retryable` 14 and 1;
            // `details` 12.
            self.walk.count(70 + kind.len() + message.len())?;
            let retryable = match raw_field(l, keys, idx, K_RETRYABLE) {
                ffi::LUA_TBOOLEAN => Value::Bool(fast::toboolean(l, -1) != 0),
                _ => Value::Nil,
            };
            fast::pop(l, 1);
            raw_field(l, keys, idx, K_DETAILS);
            let details = self.value(fast::gettop(l));
            fast::pop(l, 1);
            let mut map = vec![
                (Value::str(ERROR_KEY), Value::Bool(true)),
                (Value::str("kind"), Value::Str(kind)),
                (Value::str("message"), Value::Str(message)),
                (Value::str("retryable"), retryable),
                (Value::str("details"), details?),
            ];
            let chain = match raw_field(l, keys, idx, K_TEXT) {
                ffi::LUA_TSTRING => Some(string(l, -1).to_vec()),
                _ => None,
            };
            fast::pop(l, 1);
            if let Some(chain) = chain {
                self.walk.count(14 + chain.len())?; // `text` 9, its string 5
                map.push((Value::str("text"), Value::Str(chain)));
            }
            Ok(Value::Map(map))
        }
    }

    /// Moves what looked like array items into the map, counting their keys.
    fn move_to_map(
        &mut self,
        items: &mut Vec<(i64, Value)>,
        map: &mut Vec<(Value, Value)>,
    ) -> Result<(), Failure> {
        for (key, value) in items.drain(..) {
            self.walk.count(9)?;
            map.push((Value::Int(key), value));
        }
        Ok(())
    }
}

/// What [`Raw::entries`] has placed so far: the values of index keys
/// while every key is one (`is_array`), then the map.
struct Placed {
    items: Vec<(i64, Value)>,
    map: Vec<(Value, Value)>,
    is_array: bool,
}

impl Default for Placed {
    fn default() -> Self {
        Placed {
            items: Vec::new(),
            map: Vec::new(),
            is_array: true,
        }
    }
}

/// A scalar key as [`key_value`] makes it.
fn scalar_key(k: Scalar<'_>) -> Value {
    match k {
        Scalar::Nil => Value::Nil,
        Scalar::Bool(b) => Value::Bool(b),
        Scalar::Int(i) => Value::Int(i),
        Scalar::Float(n) => Value::Float(n),
        Scalar::Str(bytes) => Value::Str(bytes.to_vec()),
    }
}

/// The bytes of the string at `idx`.
///
/// # Safety
///
/// The value at `idx` is a string (so `lua_tolstring` converts nothing);
/// the slice lives while that slot holds it.
unsafe fn string<'s>(l: *mut lua_State, idx: c_int) -> &'s [u8] {
    // SAFETY: see above; Lua strings are never moved while referenced.
    unsafe {
        let mut len = 0;
        let p = ffi::lua_tolstring(l, idx, &raw mut len);
        if p.is_null() {
            return &[];
        }
        std::slice::from_raw_parts(p.cast::<u8>(), len)
    }
}

/// Pushes field `key` (a position in the names table at `keys`) of the
/// table on top of the stack, read raw; returns its type.
///
/// # Safety
///
/// A table is on top and the names table at `keys` (absolute).
unsafe fn field(l: *mut lua_State, keys: c_int, key: i64) -> c_int {
    // SAFETY: raw gets; the name is a string already in the VM.
    unsafe {
        fast::rawgeti(l, keys, key);
        ffi::lua_rawget(l, -2)
    }
}

/// Pushes field `key` of the table at `idx`, read raw; returns its type.
///
/// # Safety
///
/// As [`field`], for a table at `idx`.
unsafe fn raw_field(l: *mut lua_State, keys: c_int, idx: c_int, key: i64) -> c_int {
    // SAFETY: as `field`.
    unsafe {
        fast::rawgeti(l, keys, key);
        ffi::lua_rawget(l, idx)
    }
}

/// `Some(i)` when the key at `k` is an integer in `1..=len`.
///
/// # Safety
///
/// `k` holds a value.
unsafe fn index_key(l: *mut lua_State, k: c_int, len: usize) -> Option<i64> {
    // SAFETY: type tests and an integer read.
    unsafe {
        if ffi::lua_isinteger(l, k) == 0 {
            return None;
        }
        let i = fast::tointeger(l, k);
        (i >= 1 && usize::try_from(i).is_ok_and(|i| i <= len)).then_some(i)
    }
}

/// The key at `k` as a host value; table, function and other keys are
/// refused.
///
/// # Safety
///
/// `k` holds a value.
unsafe fn key_value(l: *mut lua_State, k: c_int) -> Result<Value, Failure> {
    // SAFETY: type tests and reads of `k`.
    unsafe {
        Ok(match fast::type_of(l, k) {
            ffi::LUA_TSTRING => Value::Str(string(l, k).to_vec()),
            ffi::LUA_TNUMBER if ffi::lua_isinteger(l, k) != 0 => Value::Int(fast::tointeger(l, k)),
            ffi::LUA_TNUMBER => Value::Float(ffi::lua_tonumberx(l, k, std::ptr::null_mut())),
            ffi::LUA_TBOOLEAN => Value::Bool(fast::toboolean(l, k) != 0),
            t => {
                return Err(Failure::new(format!(
                    "a {} key cannot be sent",
                    type_name(t)
                )));
            }
        })
    }
}

/// `f`, which the current entry of `entries` failed, at that entry's key
/// (the entry pushed for it: the path is made only on failure).
///
/// # Safety
///
/// A live traversal's current entry; room for two values.
unsafe fn at_entry(l: *mut lua_State, entries: &Entries, f: Failure) -> Failure {
    // SAFETY: see above.
    unsafe {
        entries.push(l);
        f.at(segment(l, fast::gettop(l) - 1))
    }
}

/// The path segment of the key at `k`: `.name`, `["odd name"]`, `[3]`.
///
/// # Safety
///
/// `k` holds a value.
unsafe fn segment(l: *mut lua_State, k: c_int) -> String {
    // SAFETY: type tests and reads of `k`.
    unsafe {
        match fast::type_of(l, k) {
            ffi::LUA_TSTRING => {
                let key = String::from_utf8_lossy(string(l, k));
                if is_identifier(&key) {
                    format!(".{key}")
                } else {
                    format!("[{key:?}]")
                }
            }
            ffi::LUA_TNUMBER if ffi::lua_isinteger(l, k) != 0 => {
                format!("[{}]", fast::tointeger(l, k))
            }
            ffi::LUA_TNUMBER => format!("[{}]", ffi::lua_tonumberx(l, k, std::ptr::null_mut())),
            ffi::LUA_TBOOLEAN => format!("[{}]", fast::toboolean(l, k) != 0),
            t => format!("[{}]", type_name(t)),
        }
    }
}

/// mlua's name of a Lua type, as errors have always said it.
fn type_name(t: c_int) -> &'static str {
    match t {
        ffi::LUA_TNIL => "nil",
        ffi::LUA_TBOOLEAN => "boolean",
        ffi::LUA_TLIGHTUSERDATA => "lightuserdata",
        ffi::LUA_TNUMBER => "number",
        ffi::LUA_TSTRING => "string",
        ffi::LUA_TTABLE => "table",
        ffi::LUA_TFUNCTION => "function",
        ffi::LUA_TTHREAD => "thread",
        _ => "userdata",
    }
}

#[cfg(test)]
mod tests {
    use mlua::Lua;
    use warren_core::Value;

    use super::super::tests::{BIG, eval};
    use super::super::{ERROR_KEY, from_lua};

    #[test]
    fn no_metamethod_runs_and_runtime_objects_are_named_by_their_tag() {
        let lua = Lua::new();
        let v = eval(
            &lua,
            r#"ran = false
            local trap = function() ran = true error("a metamethod ran") end
            local mt = { __index = trap, __newindex = trap, __pairs = trap, __len = trap, __name = "x" }
            return setmetatable({ 1, 2, inner = setmetatable({ a = true }, mt) }, mt)"#,
        );
        let copy = from_lua(&lua, &v, "v", BIG).expect("copies");
        assert!(
            !lua.globals().get::<bool>("ran").expect("flag"),
            "a metamethod ran"
        );
        assert_eq!(
            copy.get("inner").and_then(|i| i.get("a")),
            Some(&Value::Bool(true))
        );
        let named = |src: &str| {
            from_lua(&lua, &eval(&lua, src), "v", BIG)
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            named(r#"return { ch = setmetatable({}, { __warren = "channel" }) }"#),
            "v.ch: channel cannot be sent"
        );
        assert_eq!(
            named("return { [1.5] = setmetatable({}, { __warren = 7 }) }"),
            "v[1.5]: 7 cannot be sent"
        );
    }

    #[test]
    fn an_error_object_crosses_as_its_tagged_map() {
        let lua = Lua::new();
        let v = eval(
            &lua,
            r#"local mt = { __warren_error = true }
            return setmetatable({ _kind = "NotFound", _message = "gone", _retryable = true,
                _details = { id = 3 }, _text = "outer: gone" }, mt)"#,
        );
        let m = from_lua(&lua, &v, "v", BIG).expect("copies");
        assert_eq!(m.get(ERROR_KEY), Some(&Value::Bool(true)));
        assert_eq!(m.get("kind"), Some(&Value::str("NOT_FOUND")));
        assert_eq!(m.get("message"), Some(&Value::str("gone")));
        assert_eq!(m.get("retryable"), Some(&Value::Bool(true)));
        assert_eq!(
            m.get("details").and_then(|d| d.get("id")),
            Some(&Value::Int(3))
        );
        assert_eq!(m.get("text"), Some(&Value::str("outer: gone")));
    }

    #[test]
    fn the_walk_allocates_nothing_in_the_vm() {
        let lua = Lua::new();
        let v = eval(
            &lua,
            "local t = {} for i = 1, 10000 do t[i] = { n = i, s = 'x' .. i } end return t",
        );
        from_lua(&lua, &eval(&lua, "return {}"), "v", BIG).expect("the names table is made");
        lua.gc_collect().expect("collects");
        // A ceiling just above what the VM holds: a walk that allocated in
        // the VM would fail with a memory error.
        let _ = lua.set_memory_limit(lua.used_memory() + 1024);
        let copy = from_lua(&lua, &v, "v", BIG).expect("copies under a tight ceiling");
        let _ = lua.set_memory_limit(0);
        let Value::Array(items) = copy else {
            panic!("not an array")
        };
        assert_eq!(items.len(), 10_000);
        assert_eq!(items[9_999].get("s"), Some(&Value::str("x10000")));
    }
}
