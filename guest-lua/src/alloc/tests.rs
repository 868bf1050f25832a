//! The allocator's hook is taken by new VMs, and mlua's count and limit
//! read and hold as before on it.

use mlua::ffi::{lua_Alloc, lua_State, lua_getallocf};

use super::*;

unsafe extern "C" {
    fn warren_getalloc(l: *mut lua_State) -> lua_Alloc;
}

/// A VM made after [`install`], with its main state's hooks: what
/// `lua_getallocf` answers, what it allocates through, and its budget.
fn vm() -> (Lua, lua_Alloc, lua_Alloc, *mut Budget) {
    install();
    // SAFETY: the base libraries only; nothing here loads C code.
    let lua = unsafe { Lua::unsafe_new_with(StdLib::STRING, LuaOptions::default()) };
    let mut found = None;
    // SAFETY: the state is alive during the closure, which only reads.
    unsafe {
        lua.exec_raw::<()>((), |l| {
            let mut ud = std::ptr::null_mut();
            let given = lua_getallocf(l, &mut ud);
            found = Some((given, warren_getalloc(l), ud.cast::<Budget>()));
        })
        .expect("exec_raw");
    }
    let (given, used, budget) = found.expect("the closure ran");
    (lua, given, used, budget)
}

#[test]
fn a_new_vm_allocates_through_the_short_path_and_mlua_still_finds_its_hook() {
    let (lua, given, used, _) = vm();
    assert!(std::ptr::fn_addr_eq(used, allocate as lua_Alloc));
    assert!(!std::ptr::fn_addr_eq(given, allocate as lua_Alloc));
    // mlua recognises its state by its hook: its limit API answers.
    assert_eq!(lua.set_memory_limit(1 << 30).expect("mlua's hook"), 0);
    assert_eq!(lua.set_memory_limit(0).expect("mlua's hook"), 1 << 30);
}

#[test]
fn the_budget_is_read_where_mlua_keeps_it() {
    let (lua, _, _, budget) = vm();
    let t: mlua::Table = lua.create_table().expect("table");
    for i in 0..1000 {
        t.raw_set(i, format!("value {i}")).expect("set");
    }
    // SAFETY: the VM's budget, read on its thread while it is idle.
    let (used, limit) = unsafe { ((*budget).used, (*budget).limit) };
    assert_eq!(used as usize, lua.used_memory());
    assert_eq!(limit, 0);
    let ceiling = lua.used_memory() + 12_345;
    lua.set_memory_limit(ceiling).expect("limit");
    // SAFETY: as above.
    assert_eq!(unsafe { (*budget).limit } as usize, ceiling);
    lua.set_memory_limit(0).expect("limit");
}

#[test]
fn growth_past_the_limit_fails_and_frees_are_counted_large_blocks_too() {
    let (lua, _, _, _) = vm();
    let start = lua.used_memory();
    let grow = lua
        .load("local n = ... ; local s = string.rep('x', n) ; return #s")
        .into_function()
        .expect("chunk");
    // A large block (past warren_alloc's line) and a small one, each
    // counted while held and given back once collected.
    for n in [3 << 20, 100] {
        let len: usize = grow.call(n).expect("grows");
        assert_eq!(len, n);
        lua.gc_collect().expect("collect");
        lua.gc_collect().expect("collect");
        let now = lua.used_memory();
        assert!(
            now < start + 64 * 1024,
            "{now} bytes held after freeing {n}, {start} before"
        );
    }
    lua.set_memory_limit(lua.used_memory() + (1 << 20))
        .expect("limit");
    let err = grow.call::<usize>(4 << 20).expect_err("past the limit");
    assert!(matches!(err, mlua::Error::MemoryError(_)), "{err}");
    let small: usize = grow.call(1000).expect("under the limit");
    assert_eq!(small, 1000);
    lua.set_memory_limit(0).expect("limit");
    let big: usize = grow.call(4 << 20).expect("no limit");
    assert_eq!(big, 4 << 20);
}

/// Lua's own count of the bytes its state holds (`collectgarbage("count")`
/// to the byte).
fn lua_count(lua: &Lua) -> usize {
    let mut bytes = 0;
    // SAFETY: the state is alive during the closure; `lua_gc` with these
    // options only reads the collector's counts.
    unsafe {
        lua.exec_raw::<()>((), |l| {
            let k = mlua::ffi::lua_gc(l, mlua::ffi::LUA_GCCOUNT, 0) as usize;
            let b = mlua::ffi::lua_gc(l, mlua::ffi::LUA_GCCOUNTB, 0) as usize;
            bytes = k * 1024 + b;
        })
        .expect("exec_raw");
    }
    bytes
}

#[test]
fn the_budget_counts_every_block_lua_counts_small_and_large() {
    let (lua, _, _, _) = vm();
    let churn = lua
        .load(
            "local n, big = ...
             local keep = {}
             for i = 1, n do
                 local t = { i = i, s = tostring(i) .. 'x' }
                 if i % 7 == 0 then keep[#keep + 1] = t end
             end
             local s = string.rep('y', big)
             return keep, s",
        )
        .into_function()
        .expect("chunk");
    assert_eq!(lua.used_memory(), lua_count(&lua));
    let held: (mlua::Table, mlua::LuaString) = churn.call((20_000, 2 << 20)).expect("runs");
    assert_eq!(lua.used_memory(), lua_count(&lua), "while holding");
    drop(held);
    lua.gc_collect().expect("collect");
    assert_eq!(lua.used_memory(), lua_count(&lua), "after freeing");
}

/// Runs `fill(n)` (the chunk `source`, returning `#t`) under a ceiling
/// `room` bytes above the VM's use and asserts it fails as a memory error
/// without passing it; then that `fill(small)` fits under the ceiling and
/// the VM's count still agrees with Lua's once the limit is lifted.
fn fails_past_the_limit(source: &str, room: usize, n: usize, small: usize) {
    let (lua, _, _, _) = vm();
    let fill = lua.load(source).into_function().expect("chunk");
    let ceiling = lua.used_memory() + room;
    lua.set_memory_limit(ceiling).expect("limit");
    let err = fill.call::<usize>(n).expect_err("past the limit");
    assert!(matches!(err, mlua::Error::MemoryError(_)), "{err}");
    assert!(
        lua.used_memory() <= ceiling,
        "{} past {ceiling}",
        lua.used_memory()
    );
    lua.gc_collect().expect("collect");
    let got: usize = fill.call(small).expect("under the limit");
    assert_eq!(got, small);
    lua.set_memory_limit(0).expect("limit");
    assert_eq!(lua.used_memory(), lua_count(&lua));
}

#[test]
fn small_blocks_past_the_limit_fail_as_a_memory_error_and_the_vm_goes_on() {
    // A new table per item: small blocks made by `luaM_malloc_`.
    let source = "local t = {} ; for i = 1, ... do t[i] = { i } end ; return #t";
    fails_past_the_limit(source, 256 * 1024, 1_000_000, 1_000);
}

#[test]
fn an_array_grown_past_the_limit_fails_as_a_memory_error() {
    // Integers only: the one block that grows is the array's, resized in
    // place (small blocks up to a megabyte) until it does not fit.
    let source = "local t = {} ; for i = 1, ... do t[i] = i end ; return #t";
    fails_past_the_limit(source, 200 * 1024, 60_000, 4_000);
}
