//! Each inline accessor against its C function, for every kind of index
//! the machine uses (stack from either end, past the top, upvalues present
//! and absent, the registry) and every kind of value.

use std::ffi::{CString, c_int};

use mlua::Lua;
use mlua::ffi::{self, lua_State};

use super::super::raw;
use super::*;

/// Upvalues the probe closure gets.
const UPVALUES: c_int = 3;

/// The first difference between an accessor and Lua's, if any.
type Found = Option<String>;

/// Compares the reads and the copy of index `idx`.
///
/// # Safety
///
/// In a C function with room for two more values.
unsafe fn same_at(l: *mut lua_State, idx: c_int) -> Found {
    // SAFETY: see above.
    unsafe {
        let (t, want) = (type_of(l, idx), ffi::lua_type(l, idx));
        if t != want {
            return Some(format!("type of {idx}: {t}, Lua {want}"));
        }
        let (b, want) = (toboolean(l, idx), ffi::lua_toboolean(l, idx));
        if b != want {
            return Some(format!("truth of {idx}: {b}, Lua {want}"));
        }
        let (p, want) = (touserdata(l, idx), ffi::lua_touserdata(l, idx));
        if p != want {
            return Some(format!("userdata of {idx}: {p:?}, Lua {want:?}"));
        }
        let top = ffi::lua_gettop(l);
        pushvalue(l, idx);
        // A stack index from the top now reaches one further down.
        let from_top = idx < 0 && idx > ffi::LUA_REGISTRYINDEX;
        ffi::lua_pushvalue(l, if from_top { idx - 1 } else { idx });
        let copied = ffi::lua_gettop(l) == top + 2
            && ffi::lua_type(l, -1) == ffi::lua_type(l, -2)
            && (ffi::lua_rawequal(l, -1, -2) != 0 || ffi::lua_isnil(l, -1) != 0);
        ffi::lua_settop(l, top);
        (!copied).then(|| format!("copy of {idx} differs"))
    }
}

/// Every index kind, then pushes, `settop` and `pop`.
///
/// # Safety
///
/// Called by Lua as a C closure with [`UPVALUES`] upvalues.
unsafe fn probe_all(l: *mut lua_State) -> Found {
    // SAFETY: see above; every index is acceptable (a C function has
    // LUA_MINSTACK slots above its arguments).
    unsafe {
        let n = ffi::lua_gettop(l);
        if gettop(l) != n {
            return Some(format!("gettop {}, Lua {n}", gettop(l)));
        }
        let mut indices: Vec<c_int> = (1..=n + 2).chain(-n..=-1).collect();
        indices.extend((1..=UPVALUES + 2).map(ffi::lua_upvalueindex));
        indices.push(ffi::LUA_REGISTRYINDEX);
        for idx in indices {
            if let Some(found) = same_at(l, idx) {
                return Some(found);
            }
        }
        pushnil(l);
        pushboolean(l, 1);
        pushboolean(l, 0);
        pushinteger(l, -42);
        let pushed = ffi::lua_isnil(l, -4) != 0
            && ffi::lua_type(l, -3) == ffi::LUA_TBOOLEAN
            && ffi::lua_toboolean(l, -3) == 1
            && ffi::lua_type(l, -2) == ffi::LUA_TBOOLEAN
            && ffi::lua_toboolean(l, -2) == 0
            && ffi::lua_isinteger(l, -1) != 0
            && ffi::lua_tointeger(l, -1) == -42
            && ffi::lua_gettop(l) == n + 4;
        if !pushed {
            return Some("pushes differ".into());
        }
        pop(l, 3);
        settop(l, n + 3); // grows: Lua fills nils
        let grown = ffi::lua_gettop(l) == n + 3 && ffi::lua_isnil(l, -1) != 0;
        settop(l, -3);
        settop(l, n);
        let cut = grown && ffi::lua_gettop(l) == n;
        (!cut).then(|| "settop differs".into())
    }
}

unsafe extern "C-unwind" fn probe(l: *mut lua_State) -> c_int {
    // SAFETY: called by Lua as a C closure with its upvalues.
    unsafe {
        let found = probe_all(l).unwrap_or_else(|| "same".into());
        let text = CString::new(found).unwrap_or_default();
        ffi::lua_pushstring(l, text.as_ptr());
        1
    }
}

/// Calls the probe with every kind of value as arguments and upvalues.
fn run_probe(lua: &Lua, code: &str) -> String {
    let args: mlua::MultiValue = lua.load(code).eval().expect("values");
    // SAFETY: the closure's upvalues are pushed before it is made; it is
    // called with its arguments and answers one string.
    unsafe {
        lua.exec_raw::<String>(args, |l| {
            let n = ffi::lua_gettop(l);
            ffi::lua_pushboolean(l, 1);
            ffi::lua_pushinteger(l, 7);
            ffi::lua_pushlightuserdata(l, std::ptr::dangling_mut());
            ffi::lua_pushcclosure(l, probe, UPVALUES);
            ffi::lua_insert(l, 1);
            ffi::lua_call(l, n, 1);
        })
    }
    .expect("probe")
}

#[test]
fn every_accessor_reads_and_writes_as_lua_does() {
    let lua = Lua::new();
    let values = "return nil, false, true, 7, 1.5, 'text', {}, print, \
                  coroutine.create(print), io and io.stdout";
    assert_eq!(run_probe(&lua, values), "same");
    assert_eq!(run_probe(&lua, "return"), "same");
}

/// Closes the value at 1 when its slot is cut by the inline `settop`.
unsafe extern "C-unwind" fn cut_closing(l: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with a closable value at 1.
    unsafe {
        ffi::lua_toclose(l, 1);
        ffi::lua_pushinteger(l, 1);
        settop(l, 0); // past the to-be-closed slot: Lua must close it
        ffi::lua_pushinteger(l, ffi::lua_gettop(l).into());
        1
    }
}

#[test]
fn a_cut_past_a_to_be_closed_slot_closes_it() {
    let lua = Lua::new();
    // SAFETY: a plain C function.
    let cut = unsafe { lua.create_c_function(cut_closing) }.expect("fn");
    lua.globals().set("cut", cut).expect("set");
    let (closed, top): (bool, i64) = lua
        .load(
            "local closed = false
             local v = setmetatable({}, { __close = function() closed = true end })
             local top = cut(v)
             return closed, top",
        )
        .eval()
        .expect("runs");
    assert!(closed, "the to-be-closed value was not closed");
    assert_eq!(top, 0);
}

/// Compares the keyed reads of every key number (registered or not, and
/// out of range) on the table at 1.
///
/// # Safety
///
/// In a C function with the table at 1 and room for two more values.
unsafe fn same_fields(l: *mut lua_State) -> Found {
    // SAFETY: see above.
    unsafe {
        for n in -1..=NKEYS as c_int + 1 {
            let (t, want) = (truthyn(l, 1, n), warren_truthyn(l, 1, n) != 0);
            if t != want {
                return Some(format!("truth of key {n}: {t}, Lua {want}"));
            }
            let (i, want) = (intn(l, 1, n), warren_intn(l, 1, n));
            if i != want {
                return Some(format!("integer of key {n}: {i}, Lua {want}"));
            }
            let (t, want) = (getn(l, 1, n), warren_getn(l, 1, n));
            let same = t == want
                && ffi::lua_type(l, -1) == ffi::lua_type(l, -2)
                && (ffi::lua_rawequal(l, -1, -2) != 0 || ffi::lua_isnil(l, -1) != 0);
            ffi::lua_settop(l, 1);
            if !same {
                return Some(format!("value of key {n}: type {t}, Lua {want}"));
            }
        }
        None
    }
}

/// Registers the first `keys` names, then reads `t`'s fields both ways.
fn fields_of(lua: &Lua, keys: usize, t: &mlua::Table) -> String {
    // SAFETY: the table is at 1; each pushed name is popped by its
    // registration; the answer is one string.
    unsafe {
        lua.exec_raw::<String>(t.clone(), |l| {
            for key in &raw::Key::ALL[..keys] {
                let name = key.name();
                ffi::lua_pushlstring(l, name.as_ptr().cast(), name.len());
                raw::register_key(l, *key);
            }
            let found = same_fields(l).unwrap_or_else(|| "same".into());
            let text = CString::new(found).unwrap_or_default();
            ffi::lua_pushstring(l, text.as_ptr());
            ffi::lua_replace(l, 1);
            ffi::lua_settop(l, 1);
        })
    }
    .expect("reads")
}

#[test]
fn keyed_reads_find_what_lua_finds() {
    let lua = Lua::new();
    let names: Vec<&str> = raw::Key::ALL.iter().map(|k| k.name()).collect();
    let cases = [
        // Every kind of value under the machine's names, and some absent.
        "local t, names = {}, ... for i, k in ipairs(names) do \
            if i % 5 == 1 then t[k] = i elseif i % 5 == 2 then t[k] = false \
            elseif i % 5 == 3 then t[k] = 'x' .. i elseif i % 5 == 4 then t[k] = {} end end \
            return t",
        // An empty table (its hash part is Lua's shared dummy node).
        "return {}",
        // A large table whose chains are long: many other keys.
        "local t, names = {}, ... for i = 1, 5000 do t['k' .. i] = i end \
            for i, k in ipairs(names) do t[k] = i * 3 end return t",
        // Fields set and cleared again (dead keys left in the nodes).
        "local t, names = {}, ... for i, k in ipairs(names) do t[k] = i end \
            for i, k in ipairs(names) do if i % 2 == 0 then t[k] = nil end end return t",
        // Names as values and integer keys, none under the names.
        "local t, names = {}, ... for i, k in ipairs(names) do t[i] = k end return t",
    ];
    for (i, code) in cases.iter().enumerate() {
        let t: mlua::Table = lua.load(*code).call(names.clone()).expect("table");
        for keys in [0, 7, names.len()] {
            assert_eq!(fields_of(&lua, keys, &t), "same", "case {i}, {keys} keys");
        }
    }
}

/// Compares the thread and integer reads and the room check.
unsafe extern "C-unwind" fn probe_more(l: *mut lua_State) -> c_int {
    // SAFETY: called by Lua as a C function.
    unsafe {
        let n = ffi::lua_gettop(l);
        let mut same = true;
        for idx in (1..=n + 1).chain(-n..=-1) {
            same &= tothread(l, idx) == ffi::lua_tothread(l, idx);
            same &= tointeger(l, idx) == ffi::lua_tointegerx(l, idx, std::ptr::null_mut());
        }
        checkstack(l, 5);
        same &= ffi::lua_checkstack(l, 5) != 0;
        checkstack(l, 5000); // must grow: Lua's own path
        for _ in 0..5000 {
            pushnil(l);
        }
        same &= ffi::lua_gettop(l) == n + 5000;
        ffi::lua_settop(l, 0);
        ffi::lua_pushboolean(l, c_int::from(same));
        1
    }
}

#[test]
fn thread_and_integer_reads_and_the_room_check_agree_with_lua() {
    let lua = Lua::new();
    // SAFETY: a plain C function.
    let probe = unsafe { lua.create_c_function(probe_more) }.expect("fn");
    lua.globals().set("probe", probe).expect("set");
    let same: bool = lua
        .load("return probe(coroutine.create(print), 3, 3.0, 2.5, '12', 'x', nil, {}, -7, true)")
        .eval()
        .expect("runs");
    assert!(same);
}

/// Compares pointers, raw equality of every pair, and `tagged` of every
/// value against the metatable at 1, over the stack.
unsafe extern "C-unwind" fn probe_pairs(l: *mut lua_State) -> c_int {
    // SAFETY: called by Lua as a C function, its values on the stack.
    unsafe {
        let n = ffi::lua_gettop(l);
        let mut same = true;
        for a in (1..=n + 1).chain(-n..=-1) {
            same &= topointer(l, a) == ffi::lua_topointer(l, a);
            same &= touserdata(l, a) == ffi::lua_touserdata(l, a);
            for b in (1..=n + 1).chain(-n..=-1) {
                same &= rawequal(l, a, b) == ffi::lua_rawequal(l, a, b);
            }
            if a > 0 && a <= n {
                let top = ffi::lua_gettop(l);
                let fast = tagged(l, a, 1);
                let slow = warren_tagged(l, a, 1);
                same &= fast == slow && ffi::lua_gettop(l) == top + 2 * fast;
                if fast == 1 {
                    same &= ffi::lua_rawequal(l, -1, -2) != 0;
                }
                ffi::lua_settop(l, top);
            }
        }
        same &= has_room(l, 10) == 1;
        same &= has_room(l, 100_000) == ffi::lua_checkstack(l, 100_000);
        ffi::lua_settop(l, 0);
        ffi::lua_pushboolean(l, c_int::from(same));
        1
    }
}

/// Pushes a userdata of `uvs` user values (the first `tag`), with the
/// metatable at `mt` when it is given.
///
/// # Safety
///
/// In a C function with room for two more values.
unsafe fn push_udata(l: *mut lua_State, uvs: c_int, mt: Option<c_int>) {
    // SAFETY: see above.
    unsafe {
        ffi::lua_newuserdatauv(l, 16, uvs);
        if uvs > 0 {
            ffi::lua_pushinteger(l, 99);
            ffi::lua_setiuservalue(l, -2, 1);
        }
        if let Some(mt) = mt {
            ffi::lua_pushvalue(l, mt);
            ffi::lua_setmetatable(l, -2);
        }
    }
}

#[test]
fn pointers_equality_and_tagged_userdata_agree_with_lua() {
    let lua = Lua::new();
    let values: mlua::MultiValue = lua
        .load(
            "local mt = {} \
             return mt, {}, print, function() end, coroutine.create(print), \
                    'short', 'short', string.rep('long ', 20), ('long '):rep(20), \
                    2, 2.0, 2.5, 0/0, -0.0, 0, true, false, nil, io.stdout",
        )
        .eval()
        .expect("values");
    // SAFETY: the probe gets the values and four userdata (with and
    // without user values, with and without the metatable at 1).
    let same = unsafe {
        lua.exec_raw::<bool>(values, |l| {
            push_udata(l, 0, Some(1));
            push_udata(l, 1, Some(1));
            push_udata(l, 2, Some(1));
            push_udata(l, 1, None);
            ffi::lua_pushlightuserdata(l, std::ptr::dangling_mut());
            let n = ffi::lua_gettop(l);
            ffi::lua_pushcfunction(l, probe_pairs);
            ffi::lua_insert(l, 1);
            ffi::lua_call(l, n, 1);
        })
    }
    .expect("probe");
    assert!(same);
}

unsafe extern "C-unwind" {
    fn warren_freeze(l: *mut lua_State, idx: c_int);
}

/// The same writes to the tables at 1 (inline) and 2 (Lua's), under every
/// key number, of values of every kind; then whether the two tables hold
/// the same fields and flags.
///
/// # Safety
///
/// In a C function with the two tables at 1 and 2 and room for four more
/// values.
unsafe fn same_writes(l: *mut lua_State, strings: bool) -> bool {
    // SAFETY: see above; the flags byte is read through the tables'
    // pointers, as the accessors read it.
    unsafe {
        let mut same = true;
        for n in -1..=NKEYS as c_int + 1 {
            let (a, b) = (addintn(l, 1, n, 5), warren_addintn(l, 2, n, 5));
            same &= a == b;
            match n % 4 {
                0 => {
                    setintn(l, 1, n, -3);
                    warren_setintn(l, 2, n, -3);
                }
                1 => {
                    ffi::lua_pushboolean(l, 0);
                    setn(l, 1, n);
                    ffi::lua_pushboolean(l, 0);
                    warren_setn(l, 2, n);
                }
                2 => {
                    ffi::lua_pushnil(l);
                    setn(l, 1, n);
                    ffi::lua_pushnil(l);
                    warren_setn(l, 2, n);
                }
                _ if !strings => {}
                _ => {
                    ffi::lua_pushstring(l, c"v".as_ptr());
                    setn(l, 1, n);
                    ffi::lua_pushstring(l, c"v".as_ptr());
                    warren_setn(l, 2, n);
                }
            }
            same &= ffi::lua_gettop(l) == 2;
        }
        let flags = |i| *ffi::lua_topointer(l, i).cast::<u8>().add(T_FLAGS);
        same &= flags(1) == flags(2);
        // Every field of each is the other's.
        for (from, to) in [(1, 2), (2, 1)] {
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, from) != 0 {
                ffi::lua_pushvalue(l, -2);
                ffi::lua_rawget(l, to);
                same &= ffi::lua_rawequal(l, -1, -2) != 0;
                ffi::lua_settop(l, -3);
            }
        }
        same
    }
}

#[test]
fn keyed_writes_leave_what_lua_leaves() {
    let lua = Lua::new();
    let names: Vec<&str> = raw::Key::ALL.iter().map(|k| k.name()).collect();
    let make = "local names, kind = ... local t = {} \
        if kind == 1 then for i, k in ipairs(names) do t[k] = i end \
        elseif kind == 2 then for i = 1, 3000 do t['k' .. i] = i end \
            for i, k in ipairs(names) do if i % 3 > 0 then t[k] = 'x' end end \
        elseif kind == 3 then for i, k in ipairs(names) do t[k] = i end \
            for i, k in ipairs(names) do if i % 2 == 0 then t[k] = nil end end end \
        local p = setmetatable({}, t) local _ = p.absent p.fresh = 1 _ = #p \
        return t";
    for (kind, strings) in (0..4).flat_map(|k| [(k, true), (k, false)]) {
        let a: mlua::Table = lua.load(make).call((names.clone(), kind)).expect("a");
        let b: mlua::Table = lua.load(make).call((names.clone(), kind)).expect("b");
        // SAFETY: the two tables at 1 and 2; the names are registered
        // first (each name popped by its registration).
        let same = unsafe {
            lua.exec_raw::<bool>((a, b), |l| {
                for key in raw::Key::ALL {
                    let name = key.name();
                    ffi::lua_pushlstring(l, name.as_ptr().cast(), name.len());
                    raw::register_key(l, key);
                }
                let same = same_writes(l, strings);
                ffi::lua_settop(l, 0);
                ffi::lua_pushboolean(l, c_int::from(same));
            })
        }
        .expect("writes");
        assert!(same, "table kind {kind}, strings {strings}");
    }
}

/// An inline write to a frozen table: Lua's error.
unsafe extern "C-unwind" fn write_frozen(l: *mut lua_State) -> c_int {
    // SAFETY: called by Lua with a table at 1 whose field `v` exists.
    unsafe {
        warren_freeze(l, 1);
        let n = raw::Key::V as c_int;
        match ffi::lua_tointeger(l, 2) {
            0 => {
                ffi::lua_pushboolean(l, 1);
                setn(l, 1, n);
            }
            1 => setintn(l, 1, n, 1),
            _ => {
                addintn(l, 1, n, 1);
            }
        }
        0
    }
}

#[test]
fn an_inline_write_to_a_frozen_table_raises_as_lua_does() {
    let lua = Lua::new();
    // SAFETY: registers `v` so that the write finds the field.
    unsafe {
        lua.exec_raw::<()>((), |l| {
            ffi::lua_pushstring(l, c"v".as_ptr());
            raw::register_key(l, raw::Key::V);
        })
    }
    .expect("key");
    // SAFETY: a plain C function.
    let write = unsafe { lua.create_c_function(write_frozen) }.expect("fn");
    for how in 0..3 {
        let t = lua.create_table().expect("t");
        t.set("v", 7).expect("v");
        let err = write
            .call::<()>((t.clone(), how))
            .expect_err("a frozen table");
        assert!(err.to_string().contains("read-only table"), "{err}");
        assert_eq!(t.get::<i64>("v").expect("v"), 7, "write {how} went through");
    }
}

/// Compares `push_upvalue1` with `lua_getupvalue(.., 1)` for every
/// argument.
unsafe extern "C-unwind" fn probe_upvalues(l: *mut lua_State) -> c_int {
    // SAFETY: called by Lua as a C function.
    unsafe {
        let n = ffi::lua_gettop(l);
        let mut same = true;
        for i in 1..=n {
            push_upvalue1(l, i);
            let fast = ffi::lua_gettop(l) - n;
            ffi::lua_getupvalue(l, i, 1);
            let slow = ffi::lua_gettop(l) - n - fast;
            same &= fast == slow;
            if fast == 1 && slow == 1 {
                same &= ffi::lua_rawequal(l, -1, -2) != 0 || ffi::lua_isnil(l, -1) != 0;
            }
            ffi::lua_settop(l, n);
        }
        ffi::lua_pushboolean(l, c_int::from(same));
        1
    }
}

#[test]
fn a_first_upvalue_is_read_as_lua_reads_it() {
    let lua = Lua::new();
    // SAFETY: a plain C function.
    let probe = unsafe { lua.create_c_function(probe_upvalues) }.expect("fn");
    lua.globals().set("probe", probe).expect("set");
    let same: bool = lua
        .load(
            "local closed = (function() local x = {} return function() return x end end)()
             local none = function() return 1 end
             local open_value = 5
             local open = function() return open_value end
             local nil_value
             local holds_nil = function() return nil_value end
             return probe(closed, none, open, holds_nil, print, string.gmatch('a', 'a'), {}, 3)",
        )
        .eval()
        .expect("runs");
    assert!(same);
}

/// `op(inline, what, idx, ...)`: applies `what` at `idx` to the values
/// `...`, inline or by Lua, and returns the stack that is left.
unsafe extern "C-unwind" fn stack_op(l: *mut lua_State) -> c_int {
    // SAFETY: called by Lua as a C function; the indices are acceptable
    // ones (the test's), with room for one more value.
    unsafe {
        let inline = ffi::lua_toboolean(l, 1) != 0;
        let what = ffi::lua_tointeger(l, 2);
        let idx = c_int::try_from(ffi::lua_tointeger(l, 3)).unwrap_or(1);
        for _ in 0..3 {
            ffi::lua_remove(l, 1);
        }
        match (what, inline) {
            (0, true) => {
                ffi::lua_pushinteger(l, 777);
                replace(l, idx);
            }
            (0, false) => {
                ffi::lua_pushinteger(l, 777);
                ffi::lua_replace(l, idx);
            }
            (1, true) => {
                ffi::lua_pushinteger(l, 777);
                insert(l, idx);
            }
            (1, false) => {
                ffi::lua_pushinteger(l, 777);
                ffi::lua_insert(l, idx);
            }
            (2, true) => remove(l, idx),
            (2, false) => ffi::lua_remove(l, idx),
            (3, true) => ffi::lua_pushinteger(l, absindex(l, idx).into()),
            (3, false) => ffi::lua_pushinteger(l, ffi::lua_absindex(l, idx).into()),
            (4, true) => {
                let t = rawgeti(l, 1, idx.into());
                ffi::lua_pushinteger(l, t.into());
            }
            _ => {
                let t = ffi::lua_rawgeti(l, 1, idx.into());
                ffi::lua_pushinteger(l, t.into());
            }
        }
        ffi::lua_gettop(l)
    }
}

#[test]
fn stack_moves_and_array_reads_leave_what_lua_leaves() {
    let lua = Lua::new();
    // SAFETY: a plain C function.
    let op = unsafe { lua.create_c_function(stack_op) }.expect("fn");
    lua.globals().set("op", op).expect("set");
    let differences: i64 = lua
        .load(
            "local t = { 10, nil, 'x', false, 5.5 }
             t[100] = 'far'
             t.key = 1
             for i = 20, 6, -1 do t[i] = 'high' .. i end
             local values = { t, 1, 'a', false, {}, 2.5, print }
             local n, bad = #values, 0
             local function same(a, b)
                 if a.n ~= b.n then return false end
                 for i = 1, a.n do
                     if not rawequal(a[i], b[i]) then return false end
                 end
                 return true
             end
             for what = 0, 4 do
                 local first, last = -n, n
                 if what == 4 then first, last = -2, 102 end
                 for idx = first, last do
                     if idx ~= 0 then
                         local a = table.pack(op(true, what, idx, table.unpack(values, 1, n)))
                         local b = table.pack(op(false, what, idx, table.unpack(values, 1, n)))
                         if not same(a, b) then bad = bad + 1 end
                     end
                 end
             end
             return bad",
        )
        .eval()
        .expect("runs");
    assert_eq!(differences, 0);
}
