//! The kernel's `coroutine.resume` and `coroutine.close`: the standard
//! ones, plus what preemption needs to know.
//!
//! They behave as Lua's (same results, same errors) and also keep
//! [`CURRENT`] (the innermost coroutine the thread runs, for the
//! watchdog's signal handler) while the coroutine's code runs: a resume,
//! and a close, which runs the coroutine's pending `__close` handlers on
//! its own thread (where Lua's own `close` left the hook to be armed on
//! its caller, so a handler that looped held its worker for good). A
//! resume also tells a preemption apart from a plain `coroutine.yield()`:
//! when the preemption hook yielded the coroutine, the results are `true,
//! PREEMPTED` (see [`marker`]) instead of a bare `true`.

use std::cell::Cell;
use std::ffi::c_int;
use std::ptr;

use crate::machine::fast;
use mlua::ffi::{self, lua_State};

use crate::watchdog::CURRENT;

thread_local! {
    /// The coroutine the preemption hook yielded last, until its resumer
    /// sees it.
    static PREEMPTED: Cell<*mut lua_State> = const { Cell::new(ptr::null_mut()) };
}

/// Its address is the light userdata `resume` returns for a preemption.
static MARKER: u8 = 0;

/// The value `resume` returns after `true` when the coroutine was
/// preempted. Process code never sees it: the kernel consumes it.
pub(crate) fn marker() -> mlua::LightUserData {
    mlua::LightUserData(ptr::from_ref(&MARKER).cast_mut().cast())
}

/// Records that the hook is yielding `l`.
pub(crate) fn preempting(l: *mut lua_State) {
    PREEMPTED.set(l);
}

/// Whether the preemption hook yielded `co` last (then forgotten): a
/// resume that ended in a yield of no values asks.
pub(crate) fn take_preempted(co: *mut lua_State) -> bool {
    PREEMPTED.replace(ptr::null_mut()) == co
}

/// Resumes `co` with the `narg` values on its stack from `l` (as
/// `lua_resume`), keeping [`CURRENT`] while it runs; returns the status
/// and the number of results.
///
/// # Safety
///
/// As `lua_resume`: `co` is a thread of `l`'s state with `narg` values
/// pushed.
pub(crate) unsafe fn resume_tracked(
    l: *mut lua_State,
    co: *mut lua_State,
    narg: c_int,
) -> (c_int, c_int) {
    let outer = CURRENT.replace(co);
    let mut nres = 0;
    // SAFETY: see above.
    let status = unsafe { ffi::lua_resume(co, l, narg, &raw mut nres) };
    CURRENT.set(outer);
    (status, nres)
}

/// `resume(co, ...)`, as `coroutine.resume`.
///
/// # Safety
///
/// Called by Lua as a C function.
pub(crate) unsafe extern "C-unwind" fn resume(l: *mut lua_State) -> c_int {
    // SAFETY: `l` is the calling thread; every call below follows
    // lcorolib.c's `auxresume`. Nothing on this frame needs dropping when
    // `luaL_argerror` raises.
    unsafe {
        let co = fast::tothread(l, 1);
        if co.is_null() {
            ffi::luaL_argerror(l, 1, c"coroutine expected".as_ptr());
        }
        let narg = fast::gettop(l) - 1;
        if fast::has_room(co, narg) == 0 {
            return fail(l, c"too many arguments to resume");
        }
        ffi::lua_xmove(l, co, narg);
        let (status, nres) = resume_tracked(l, co, narg);
        if status != ffi::LUA_OK && status != ffi::LUA_YIELD {
            fast::pushboolean(l, 0);
            ffi::lua_xmove(co, l, 1); // the error
            return 2;
        }
        if status == ffi::LUA_YIELD && nres == 0 && take_preempted(co) {
            fast::pushboolean(l, 1);
            ffi::lua_pushlightuserdata(l, marker().0);
            return 2;
        }
        if fast::has_room(l, nres + 1) == 0 {
            fast::pop(co, nres);
            return fail(l, c"too many results to resume");
        }
        fast::pushboolean(l, 1);
        ffi::lua_xmove(co, l, nres);
        nres + 1
    }
}

/// `close(co)`, as `coroutine.close` (lcorolib's `luaB_close`): closes a
/// suspended or dead coroutine, running its pending `__close` handlers
/// with [`CURRENT`] set to it; `true`, or `false, error`.
///
/// # Safety
///
/// Called by Lua as a C function.
pub(crate) unsafe extern "C-unwind" fn close(l: *mut lua_State) -> c_int {
    // SAFETY: `l` is the calling thread; every call follows lcorolib.c's
    // `luaB_close` and `auxstatus`. Nothing on this frame needs dropping
    // when `luaL_argerror` or `luaL_error` raises.
    unsafe {
        let co = fast::tothread(l, 1);
        if co.is_null() {
            ffi::luaL_argerror(l, 1, c"coroutine expected".as_ptr());
        }
        if let Some(name) = unclosable(l, co) {
            // Where the process called `coroutine.close`: level 2, past the
            // kernel's wrapper (`kernel/coroutines.lua`).
            ffi::luaL_where(l, 2);
            ffi::lua_pushfstring(l, c"cannot close a %s coroutine".as_ptr(), name.as_ptr());
            ffi::lua_concat(l, 2);
            ffi::lua_error(l);
        }
        let outer = CURRENT.replace(co);
        let status = ffi::lua_closethread(co, l);
        CURRENT.set(outer);
        if status == ffi::LUA_OK {
            fast::pushboolean(l, 1);
            return 1;
        }
        fast::pushboolean(l, 0);
        ffi::lua_xmove(co, l, 1); // the error
        2
    }
}

/// Why `co` may not be closed from `l` (lcorolib's `auxstatus`): it is
/// running, or normal (it resumed another); `None` when it is suspended or
/// dead.
///
/// # Safety
///
/// `co` is a thread of `l`'s state.
unsafe fn unclosable(l: *mut lua_State, co: *mut lua_State) -> Option<&'static std::ffi::CStr> {
    if l == co {
        return Some(c"running");
    }
    // SAFETY: see above; `ar` is ours, filled by `lua_getstack`.
    unsafe {
        if ffi::lua_status(co) != ffi::LUA_OK {
            return None; // suspended in a yield, or dead by an error
        }
        let mut ar: ffi::lua_Debug = std::mem::zeroed();
        (ffi::lua_getstack(co, 0, &raw mut ar) != 0).then_some(c"normal")
    }
}

/// Returns `false, message` from `resume`.
///
/// # Safety
///
/// `l` has room for two values (Lua guarantees a C function
/// `LUA_MINSTACK`).
unsafe fn fail(l: *mut lua_State, message: &std::ffi::CStr) -> c_int {
    // SAFETY: see above.
    unsafe {
        fast::pushboolean(l, 0);
        ffi::lua_pushstring(l, message.as_ptr());
    }
    2
}

#[cfg(test)]
mod tests {
    use mlua::Lua;

    /// Suspends `n` coroutines in `coroutine.yield`, each having called 30
    /// frames deep first (its stack grew past the initial 45 slots), and
    /// returns the VM's bytes per coroutine after a full collection.
    fn suspended_bytes(lua: &Lua, n: usize) -> usize {
        lua.load("held = table.pack(table.unpack({}, 1, ...))")
            .call::<()>(n)
            .expect("the table is made");
        lua.gc_collect().expect("collects");
        let before = lua.used_memory();
        lua.load(
            r##"
            local function deep(k) if k == 0 then return 0 end return 1 + deep(k - 1) end
            for i = 1, held.n do
                local co = coroutine.create(function(...)
                    local a = deep(30) + select("#", ...)
                    while true do a = coroutine.yield(a) end
                end)
                assert(coroutine.resume(co))
                held[i] = co
            end
            "##,
        )
        .exec()
        .expect("coroutines suspend");
        lua.gc_collect().expect("collects");
        lua.used_memory().saturating_sub(before) / n
    }

    #[test]
    fn a_suspended_coroutine_keeps_a_small_stack_after_a_collection() {
        let lua = Lua::new();
        let bytes = suspended_bytes(&lua, 2000);
        // A thread is 208 bytes and its stack had grown to 90 slots of 16
        // and as many call records: 2,277 bytes per coroutine with Lua's own
        // rule, 880 with the stack cut to its use (see vendor/lua-src/WARREN.md).
        assert!(bytes < 1000, "a suspended coroutine costs {bytes} bytes");
    }

    #[test]
    fn young_collections_leave_suspended_stacks_and_full_ones_cut_them() {
        use mlua::state::{GcGenParams, GcIncParams, GcMode};
        let lua = Lua::new();
        // Ballast: the coroutines below are too small a growth of the heap
        // for a major collection. Building it leaves the collector in its
        // full-collection state ("bad collections"); entering generational
        // mode afresh after it puts young collections back.
        lua.load("ballast = {} for i = 1, 200000 do ballast[i] = {} end")
            .exec()
            .expect("ballast");
        lua.gc_set_mode(GcMode::Incremental(GcIncParams::default()));
        lua.gc_set_mode(GcMode::Generational(GcGenParams::default()));
        let n = 300;
        // Each coroutine's first suspension is cut (lua_resume); its second
        // run calls 30 frames deep and suspends with the stack that grew.
        lua.load(
            r##"
            local function deep(k) if k == 0 then return 0 end return 1 + deep(k - 1) end
            held = {}
            for i = 1, ... do
                local co = coroutine.create(function()
                    coroutine.yield()
                    local a = deep(30)
                    while true do a = coroutine.yield(a) end
                end)
                assert(coroutine.resume(co))
                assert(coroutine.resume(co))
                held[i] = co
            end
            "##,
        )
        .call::<()>(n)
        .expect("coroutines suspend");
        lua.gc_step().expect("a young collection");
        let after_young = lua.used_memory();
        lua.gc_collect().expect("collects");
        let after_full = lua.used_memory();
        let cut = after_young.saturating_sub(after_full) / n;
        // About 100 slots and 30 call records down to 27 slots: about
        // 3,000 bytes per coroutine, given back by the full collection only.
        assert!(
            cut > 1500,
            "the full collection gave back {cut} bytes per coroutine"
        );
    }

    #[test]
    fn type_names_every_type_and_refuses_no_argument() {
        // `type` answers from upvalues in the patched lbaselib.c.
        let lua = Lua::new();
        let names: String = lua
            .load(
                r#"
                local u = ...
                local values = { false, 1, 1.5, "s", {}, print, coroutine.create(print), u }
                local out = { type(nil) }
                for i = 1, #values do out[#out + 1] = type(values[i]) end
                local ok, err = pcall(type)
                assert(not ok and err:find("value expected"), tostring(err))
                return table.concat(out, ",")
                "#,
            )
            .call(mlua::LightUserData(std::ptr::null_mut()))
            .expect("type runs");
        assert_eq!(
            names,
            "nil,boolean,number,number,string,table,function,thread,userdata"
        );
        let t = lua.create_any_userdata(1u8).expect("userdata");
        let full: String = lua
            .load("return type(...)")
            .call(t)
            .expect("type of a full userdata");
        assert_eq!(full, "userdata");
    }

    #[test]
    fn shrunk_stacks_grow_again_for_what_resumes_them() {
        let lua = Lua::new();
        let _ = suspended_bytes(&lua, 100);
        // Many arguments, deep calls after the resume, a yield inside a
        // pcall (a continuation frame below the yield), and the kernel's
        // resume as well as the standard one.
        lua.globals()
            // SAFETY: `resume` follows the C function protocol.
            .set(
                "kresume",
                unsafe { lua.create_c_function(super::resume) }.expect("c function"),
            )
            .expect("global set");
        lua.load(
            r#"
            local function deep(k) if k == 0 then return 0 end return 1 + deep(k - 1) end
            local args = {}
            for i = 1, 300 do args[i] = i end
            for i = 1, #held do
                local resume = i % 2 == 0 and kresume or coroutine.resume
                local ok, a = resume(held[i], table.unpack(args))
                assert(ok and a == 1, "resumed with many arguments")
            end
            local co = coroutine.create(function()
                local ok, v = pcall(function()
                    local x = coroutine.yield("in pcall")
                    return x + deep(5000)
                end)
                coroutine.yield(ok, v)
                return "done"
            end)
            assert(select(2, coroutine.resume(co)) == "in pcall")
            collectgarbage()
            local ok, okp, v = kresume(co, 7, table.unpack(args))
            assert(ok and okp and v == 5007, "pcall's continuation ran: " .. tostring(v))
            collectgarbage()
            local ok2, r = coroutine.resume(co)
            assert(ok2 and r == "done")
            "#,
        )
        .exec()
        .expect("every coroutine resumes correctly after its stack shrank");
    }

    #[test]
    fn stack_pointers_survive_the_cut() {
        // What points into a suspended coroutine's stack must follow it when
        // the stack is cut: open upvalues (shared with a closure outside),
        // to-be-closed variables, a yield inside a metamethod, a close of
        // the coroutine after the cut, and values yielded in bulk.
        let lua = Lua::new();
        lua.load(
            r##"
            local function deep(k) if k == 0 then return 0 end return 1 + deep(k - 1) end
            local peek
            local closed = {}
            local co = coroutine.create(function()
                local counter = 0
                peek = function() counter = counter + 1 return counter end
                local guard <close> = setmetatable({}, { __close = function() closed[#closed + 1] = counter end })
                deep(50)
                counter = coroutine.yield("first") + counter
                local t = setmetatable({}, { __index = function(_, k) return coroutine.yield("in __index " .. k) end })
                local v = t.key
                deep(50)
                local many = select("#", coroutine.yield(table.unpack({}, 1, 500)))
                return counter, v, many
            end)
            assert(select(2, coroutine.resume(co)) == "first")
            collectgarbage()
            assert(peek() == 1, "the open upvalue followed the stack")
            assert(select(2, coroutine.resume(co, 10)) == "in __index key")
            collectgarbage()
            local r = table.pack(coroutine.resume(co, "from the metamethod"))
            assert(r[1] and r.n == 501, "500 values yielded")
            collectgarbage()
            local ok2, counter, v, many = coroutine.resume(co, table.unpack({}, 1, 300))
            assert(ok2 and counter == 11 and v == "from the metamethod" and many == 300)
            assert(closed[1] == 11, "the to-be-closed variable ran once, at return")

            -- Closing a suspended coroutine whose stack was cut runs its __close.
            local co2 = coroutine.create(function()
                local g <close> = setmetatable({}, { __close = function() closed[#closed + 1] = "closed" end })
                deep(40)
                coroutine.yield()
            end)
            coroutine.resume(co2)
            collectgarbage()
            assert(coroutine.close(co2) and closed[2] == "closed")
            "##,
        )
        .set_name("=cut")
        .exec()
        .expect("upvalues, to-be-closed variables and metamethod yields survive the cut");
    }
}
