//! The kernel's machinery in C: the run queue, its threads, channels (waiters,
//! non-blocking and blocking receive and send, host-fed delivery), a
//! message to a process of the same VM, a spawn, a process's inbox and
//! events channels, a message's and a payload's accessors and a host
//! call's value handed to the coroutine awaiting it, as C closures on the
//! raw Lua API over the kernel's own tables. The kernel calls them where
//! it had Lua functions of the same names; a blocking `receive`/`send`
//! yields the kernel's `BLOCK` token from C. The API calls they make most
//! are inline ([`fast`]: the vendored Lua's structures read in place at
//! offsets its build asserts).
//!
//! `H.machine(rq, NIL, BLOCK, CLOSED, ChanMT, TAKEN, cur)`
//! builds them once per VM and returns a table of them: `cur` is a kernel
//! function whose first upvalue is the kernel's `current` (the coroutine
//! record being run), which the blocking methods read. What the kernel
//! makes later is given with `bind(ErrMT, MsgMT, procs, mkerr,
//! PayloadMT, payload_list, start, entries, TimeMT, bypid)`, and later
//! `bind_start(ENV_MT, proc_main, value_of)`.
//!
//! Guarantees: nothing here runs a metamethod or user code (every table
//! access is raw, and the tables are the kernel's); no Rust value with a
//! destructor is alive across a call that may raise; the semantics and
//! the order of writes are those of the Lua they replace (documented in
//! [`chan`], [`runq`] and [`send`]).

mod chan;
mod done;
mod event;
mod exit;
pub(crate) mod fast;
mod fire;
mod frozen;
mod inbox;
mod kthread;
mod mailbox;
mod msg;
mod protect;
pub(crate) mod raw;
mod run;
mod runq;
mod select;
mod send;
mod spawn;
mod start;
mod timer;
mod walk;

use std::ffi::{CStr, c_int};

use mlua::ffi::{self, lua_State};

use raw::Key;

/// The C functions, by the names the kernel gives them.
const FUNCTIONS: [(&CStr, ffi::lua_CFunction); 49] = [
    (c"wake", runq::lua_wake),
    (c"rq_next", runq::lua_next),
    (c"rq_len", runq::lua_len),
    (c"owe", runq::lua_owe),
    (c"take_owed", runq::lua_take_owed),
    (c"resume_next", runq::lua_resume_next),
    (c"try_recv", chan::lua_try_recv),
    (c"try_send", chan::lua_try_send),
    (c"deliver", chan::lua_deliver),
    (c"rq_push", chan::lua_rq_push),
    (c"rq_pop", chan::lua_rq_pop),
    (c"sq_push", chan::lua_sq_push),
    (c"sq_pop", chan::lua_sq_pop),
    (c"new_chan", chan::lua_new_chan),
    (c"chan_of", chan::lua_chan_of),
    (c"receive", chan::receive),
    (c"send", chan::send),
    (c"select", select::select),
    (c"bind_select", select::bind_select),
    (c"case_receive", select::case_receive),
    (c"case_send", select::case_send),
    (c"process_send", send::lua_send),
    (c"bind_send", send::bind_send),
    (c"spawn1", spawn::lua_spawn1),
    (c"inbox1", mailbox::inbox1),
    (c"events1", mailbox::events1),
    (c"drain", done::lua_drain),
    (c"call", done::lua_call),
    (c"call_as", done::lua_call_as),
    (c"bind", bind),
    (c"bind_start", start::bind_start),
    (c"msg_topic", msg::topic),
    (c"msg_from", msg::from),
    (c"msg_payload", msg::payload),
    (c"payload_data", msg::data),
    (c"kthread", kthread::lua_kthread),
    (c"is_kthread", kthread::lua_is_kthread),
    (c"user_yield", kthread::lua_user_yield),
    (c"prime", crate::step::prime),
    (c"freeze", frozen::lua_freeze),
    (c"setmetatable", frozen::lua_setmetatable),
    (c"pcall", protect::lua_pcall),
    (c"xpcall", protect::lua_xpcall),
    (c"bind_protect", protect::bind_protect),
    (c"measure", walk::lua_measure),
    (c"run", run::lua_run),
    (c"bind_run", run::bind_run),
    (c"timer", timer::lua_timer),
    (c"cancel_timer", timer::lua_cancel_timer),
];

/// Arguments `H.machine` takes: the upvalues after the run queue's state,
/// up to `cur`.
const ARGS: c_int = raw::CURRENT - 1;

/// `bind(ErrMT, MsgMT, procs, mkerr, PayloadMT, payload_list, start,
/// entries, TimeMT, bypid)`: what the kernel makes after the machine.
///
/// # Safety
///
/// Called by Lua as a machine C closure.
unsafe extern "C-unwind" fn bind(l: *mut lua_State) -> c_int {
    // SAFETY: three tables, a function, a table, two functions and three
    // tables, checked, into the slots `raw::Late` names.
    unsafe {
        raw::settop(l, 10);
        for i in 1..=10 {
            let want = if matches!(i, 4 | 6 | 7) {
                ffi::LUA_TFUNCTION
            } else {
                ffi::LUA_TTABLE
            };
            if fast::type_of(l, i) != want {
                ffi::luaL_argerror(l, i, c"wrong type".as_ptr());
            }
        }
        let late = [
            raw::Late::ErrorMt,
            raw::Late::MsgMt,
            raw::Late::Procs,
            raw::Late::Mkerr,
            raw::Late::PayloadMt,
            raw::Late::PayloadList,
            raw::Late::Start,
            raw::Late::Entries,
            raw::Late::TimeMt,
            raw::Late::Bypid,
        ];
        for (i, slot) in late.into_iter().enumerate() {
            fast::pushvalue(l, c_int::try_from(i).unwrap_or(0) + 1);
            ffi::lua_rawseti(l, raw::uv(raw::LATE), slot as i64);
        }
        0
    }
}

/// Pushes `H.machine` for the VM whose `Stepper` is `ctx`.
///
/// # Safety
///
/// `ctx` outlives the VM's last call of any closure the builder makes.
pub(crate) unsafe fn push_builder(l: *mut lua_State, ctx: &crate::step::Stepper) {
    let raw = std::ptr::from_ref(ctx)
        .cast_mut()
        .cast::<std::ffi::c_void>();
    // SAFETY: see above; one value pushed, consumed by the closure.
    unsafe {
        ffi::lua_pushlightuserdata(l, raw);
        ffi::lua_pushcclosure(l, build, 1);
    }
}

/// `H.machine(...)`: see the module's documentation. Raises on arguments
/// of the wrong types.
///
/// # Safety
///
/// Called by Lua as a C function.
pub(crate) unsafe extern "C-unwind" fn build(l: *mut lua_State) -> c_int {
    // SAFETY: the arguments are checked before any is used; the stack has
    // room for every upvalue (checked); every closure gets the same
    // upvalues, in the order `raw` names them.
    unsafe {
        raw::settop(l, ARGS);
        for i in 1..=ARGS {
            // The tokens and `cur` are functions, the rest tables.
            let want = if i == ARGS || (raw::NIL - 1..=raw::CLOSED - 1).contains(&i) {
                ffi::LUA_TFUNCTION
            } else {
                ffi::LUA_TTABLE
            };
            if fast::type_of(l, i) != want {
                ffi::luaL_argerror(l, i, c"wrong type".as_ptr());
            }
        }
        let name = ffi::lua_getupvalue(l, ARGS, 1);
        if ffi::lua_iscfunction(l, ARGS) != 0
            || name.is_null()
            || CStr::from_ptr(name) != c"current"
        {
            ffi::luaL_argerror(l, ARGS, c"its first upvalue is not `current`".as_ptr());
        }
        raw::settop(l, ARGS);
        // A Lua function's upvalue: an `UpVal`, which the machine writes
        // through (`runq::set_current`); kept alive by the function, an
        // upvalue of every machine closure.
        let current = ffi::lua_upvalueid(l, ARGS, 1);
        let upvalues = raw::LEADING + c_int::try_from(Key::ALL.len()).unwrap_or(0);
        if fast::has_room(l, 2 * upvalues + 4) == 0 {
            ffi::luaL_error(l, c"H.machine: stack overflow".as_ptr());
        }
        runq::presize(l, 1);
        // The conversion's table of field names, made now: a process's
        // end copies its result in C, where nothing may allocate
        // (machine/exit.rs).
        crate::convert::push_keys(l);
        raw::pop(l, 1);
        runq::new_state(l, current);
        fast::insert(l, 1); // the state is upvalue 1, the arguments follow
        ffi::lua_createtable(l, raw::Late::LastTopic as c_int, 0); // LATE: its last slot
        // CTX: the builder's own upvalue (none in a test VM: null).
        ffi::lua_pushlightuserdata(l, fast::touserdata(l, ffi::lua_upvalueindex(1)));
        for (i, key) in Key::ALL.into_iter().enumerate() {
            debug_assert_eq!(key as usize, i, "Key::ALL is in discriminant order");
            let name = key.name();
            ffi::lua_pushlstring(l, name.as_ptr().cast(), name.len());
            fast::pushvalue(l, -1);
            raw::register_key(l, key);
        }
        ffi::lua_createtable(l, 0, 16);
        let out = fast::gettop(l);
        for (name, f) in FUNCTIONS {
            for i in 1..=upvalues {
                fast::pushvalue(l, i);
            }
            ffi::lua_pushcclosure(l, f, upvalues);
            ffi::lua_setfield(l, out, name.as_ptr());
        }
        // What a wake-up is queued with to start a `prime`d coroutine.
        ffi::lua_pushlightuserdata(l, crate::step::primed_marker());
        ffi::lua_setfield(l, out, c"PRIMED".as_ptr());
        1
    }
}

#[cfg(test)]
mod tests {
    use mlua::{Function, Lua, Table};

    /// A VM with `H.machine` as the global `machine`, and the kernel's
    /// tables and tokens made as the kernel makes them.
    fn vm() -> Lua {
        let lua = Lua::new();
        // SAFETY: `build` is a C function that checks its arguments.
        let f = unsafe { lua.create_c_function(super::build) }.expect("c function");
        lua.globals().set("machine", f).expect("set");
        lua.load(
            r##"
            NIL, BLOCK, CLOSED = function() end, function() end, function() end
            ChanMT, TAKEN = { __metatable = false, __warren = "channel" }, {}
            local current
            M = machine({}, NIL, BLOCK, CLOSED, ChanMT, TAKEN, function() return current end)
            "##,
        )
        .exec()
        .expect("machine built");
        lua
    }

    #[test]
    fn kthread_marks_its_threads_only_and_they_run_as_coroutines_do() {
        let lua = vm();
        let got: String = lua
            .load(
                r##"
                local k = M.kthread(function(a) local b = coroutine.yield(a + 1) return b * 2 end)
                local own = coroutine.create(print)
                local out = { tostring(M.is_kthread(k)), tostring(M.is_kthread(own)),
                    tostring(M.is_kthread(coroutine.running())), tostring(M.is_kthread()),
                    tostring(M.is_kthread({})), tostring(M.is_kthread(print)) }
                local _, x = coroutine.resume(k, 1)
                local _, y = coroutine.resume(k, 10)
                out[#out + 1] = x .. " " .. y .. " " .. coroutine.status(k)
                out[#out + 1] = tostring(M.is_kthread(k)) -- ended, still marked
                out[#out + 1] = tostring(pcall(M.kthread, {}))
                return table.concat(out, " ")
                "##,
            )
            .eval()
            .expect("run");
        assert_eq!(
            got,
            "true false false false false false 2 20 dead true false"
        );
    }

    #[test]
    fn a_kernel_thread_costs_what_any_new_coroutine_costs() {
        let lua = vm();
        let per_thread = |maker: &str| -> usize {
            let make: Function = lua.load(maker).eval().expect("maker");
            lua.gc_collect().expect("collects");
            let before = lua.used_memory();
            let held: Table = make.call(2000).expect("made");
            let bytes = lua.used_memory().saturating_sub(before) / 2000;
            drop(held);
            bytes
        };
        let own = per_thread(
            "return function(n) local t = {} for i = 1, n do t[i] = coroutine.create(print) end return t end",
        );
        let kernel = per_thread(
            "return function(n) local t = {} for i = 1, n do t[i] = M.kthread(print) end return t end",
        );
        assert_eq!(kernel, own, "the mark sits in the thread's padding");
        // A thread (208 bytes), its 28 first stack slots (448) and its
        // slot in the holding table.
        assert!(own <= 208 + 448 + 16, "a new coroutine costs {own} bytes");
    }

    #[test]
    fn build_refuses_wrong_arguments_and_a_getter_of_anything_but_current() {
        let lua = vm();
        let machine: Function = lua.globals().get("machine").expect("machine");
        let err = machine.call::<Table>(()).expect_err("no arguments");
        assert!(err.to_string().contains("bad argument #1"), "{err}");
        let err = lua
            .load(
                r##"local other
                return machine({}, NIL, BLOCK, CLOSED, ChanMT, TAKEN, function() return other end)"##,
            )
            .call::<Table>(())
            .expect_err("a getter of `other`");
        assert!(err.to_string().contains("not `current`"), "{err}");
    }

    #[test]
    fn the_run_queue_hands_back_what_was_woken_and_counts_it_ready() {
        let lua = vm();
        let got: String = lua
            .load(
                r##"
                local p = { nready = 0, ext = 1 }
                local a, b = { p = p, ext = true }, { p = p }
                M.wake(a, 1, 2, 3)
                M.wake(b)
                local out = { M.rq_len(), p.nready, p.ext, tostring(a.ext) }
                local cr, x, y, z = M.rq_next()
                out[#out + 1] = (cr == a) and (x .. y .. z) or "wrong"
                cr, x = M.rq_next()
                out[#out + 1] = (cr == b) and tostring(x) or "wrong"
                out[#out + 1] = select("#", M.rq_next())
                out[#out + 1] = M.rq_len()
                return table.concat(out, " ")
                "##,
            )
            .eval()
            .expect("run");
        assert_eq!(got, "2 2 0 nil 123 nil 0 0");
    }

    /// The queue is a ring in the table's array part: kept non-empty for
    /// thousands of wake-ups it wraps, and it doubles while wrapped (the
    /// entries past its start moved behind the rest): the same values and
    /// order throughout, nil holes included.
    #[test]
    fn the_run_queue_keeps_order_and_nils_as_its_ring_wraps_and_grows() {
        let lua = vm();
        let got: String = lua
            .load(
                r##"
                local p = { nready = 0 }
                local crs = {}
                for i = 1, 8 do crs[i] = { p = p, i = i } end
                local bad, sent, next_in, next_out = 0, 0, 1, 1
                local function put(k)
                    for _ = 1, k do
                        local i = next_in
                        next_in = next_in + 1
                        local a = (i % 3 ~= 0) and i or nil
                        local c = (i % 2 == 0) and ("c" .. i) or nil
                        M.wake(crs[i % 8 + 1], a, nil, c)
                        sent = sent + 1
                    end
                end
                local function check(k)
                    for _ = 1, k do
                        local i = next_out
                        next_out = next_out + 1
                        local cr, a, b, c = M.rq_next()
                        local want_a = (i % 3 ~= 0) and i or nil
                        local want_c = (i % 2 == 0) and ("c" .. i) or nil
                        if cr ~= crs[i % 8 + 1] or a ~= want_a or b ~= nil or c ~= want_c then
                            bad = bad + 1
                        end
                    end
                end
                -- A queue kept non-empty for 5,000 wake-ups wraps its
                -- ring many times; then one that grows while wrapped,
                -- twice (64 entries to 4,096).
                put(40)
                check(20)
                for _ = 1, 250 do put(20) check(20) end
                put(30) check(45) put(100) check(70) put(3000)
                check(M.rq_len())
                local out = { bad, M.rq_len(), select("#", M.rq_next()), p.nready, next_out - 1, sent }
                put(3) check(3) -- emptied and cut back: the first ring again
                out[#out + 1] = bad
                return table.concat(out, " ")
                "##,
            )
            .eval()
            .expect("run");
        assert_eq!(got, "0 0 0 8170 8170 8170 0");
    }

    /// A burst's ring is cut back when the queue empties: the memory of
    /// 20,000 queued wake-ups (80,000 slots) is given back, and the ring
    /// works as before.
    #[test]
    fn an_emptied_run_queue_gives_back_what_a_burst_grew() {
        let lua = vm();
        let burst: Function = lua
            .load(
                r##"
                local p = { nready = 0 }
                local cr = { p = p }
                local sent, taken = 0, 0
                return function(n, take)
                    for _ = 1, n do sent = sent + 1 M.wake(cr, sent) end
                    local ok = true
                    for _ = 1, take do
                        taken = taken + 1
                        local c, v = M.rq_next()
                        ok = ok and c == cr and v == taken
                    end
                    return ok and M.rq_len() == sent - taken
                end
                "##,
            )
            .eval()
            .expect("burst");
        lua.gc_collect().expect("collects");
        let start = lua.used_memory();
        assert!(burst.call::<bool>((20_000, 19_999)).expect("fills"));
        let full = lua.used_memory();
        assert!(full > start + 80_000 * 16, "{start} -> {full}");
        assert!(burst.call::<bool>((0, 1)).expect("empties"));
        let empty = lua.used_memory();
        assert!(empty + 80_000 * 16 < full, "{full} -> {empty}");
        assert!(burst.call::<bool>((5, 5)).expect("again"));
    }

    /// A buffer that never empties (a backlog of 1 to 9 for 20,000
    /// messages) keeps its order and its slots near the start of its
    /// table: the entries slide down instead of walking out of the array
    /// part (before, `t` ended past 20,000).
    #[test]
    fn a_buffer_with_a_steady_backlog_keeps_order_and_its_slots_in_place() {
        let lua = vm();
        let got: String = lua
            .load(
                r##"
                local s = { mb = {} }
                local sent, got, ok, highest = 0, 0, true, 0
                for i = 1, 20000 do
                    for _ = 1, 1 + i % 3 do sent = sent + 1 M.deliver(s, sent) end
                    while s.buf.t - s.buf.h + 1 > 1 + i % 9 do
                        local r, v = M.try_recv(s)
                        got = got + 1
                        ok = ok and r and v == got
                    end
                    if s.buf.t > highest then highest = s.buf.t end
                end
                while true do
                    local r, v = M.try_recv(s)
                    if not r then break end
                    got = got + 1
                    ok = ok and v == got
                end
                return table.concat({ tostring(ok), tostring(got == sent), tostring(highest <= 64),
                    s.buf.h, s.buf.t }, " ")
                "##,
            )
            .eval()
            .expect("run");
        assert_eq!(got, "true true true 1 0");
    }

    /// A buffer grown by a burst gives its memory back when it empties.
    #[test]
    fn an_emptied_buffer_gives_back_what_a_burst_grew() {
        let lua = vm();
        let burst: Function = lua
            .load(
                r##"
                local s = { mb = {} }
                return function(n, take)
                    for i = 1, n do M.deliver(s, i) end
                    for _ = 1, take do M.try_recv(s) end
                    return s.buf.t - s.buf.h + 1
                end
                "##,
            )
            .eval()
            .expect("burst");
        assert_eq!(burst.call::<i64>((1, 1)).expect("first"), 0);
        lua.gc_collect().expect("collects");
        let start = lua.used_memory();
        assert_eq!(burst.call::<i64>((20_000, 19_999)).expect("fills"), 1);
        let full = lua.used_memory();
        assert!(full > start + 20_000 * 16, "{start} -> {full}");
        assert_eq!(burst.call::<i64>((0, 1)).expect("empties"), 0);
        let empty = lua.used_memory();
        assert!(empty + 20_000 * 16 < full, "{full} -> {empty}");
        assert_eq!(burst.call::<i64>((5, 3)).expect("again"), 2);
    }

    #[test]
    fn delivery_buffers_nil_as_the_token_and_a_receive_gives_it_back_as_nil() {
        let lua = vm();
        let got: String = lua
            .load(
                r##"
                local mb = {}
                local s = { mb = mb }
                M.deliver(s, nil)
                M.deliver(s, "x")
                local out = { tostring(s.buf[1] == NIL), s.buf.t - s.buf.h + 1 }
                local r, v, ok = M.try_recv(s)
                out[#out + 1] = tostring(r) .. tostring(v) .. tostring(ok)
                r, v, ok = M.try_recv(s)
                out[#out + 1] = tostring(r) .. tostring(v) .. tostring(ok)
                out[#out + 1] = tostring(M.try_recv(s))
                out[#out + 1] = TAKEN[mb]
                s.closed = true
                r, v, ok = M.try_recv(s)
                out[#out + 1] = tostring(r) .. tostring(v) .. tostring(ok)
                return table.concat(out, " ")
                "##,
            )
            .eval()
            .expect("run");
        assert_eq!(got, "true 2 trueniltrue truextrue false 2 truenilfalse");
    }

    #[test]
    fn a_host_call_registers_its_wait_and_returns_what_it_is_resumed_with() {
        let lua = Lua::new();
        // SAFETY: `build` is a C function that checks its arguments.
        let f = unsafe { lua.create_c_function(super::build) }.expect("c function");
        lua.globals().set("machine", f).expect("set");
        let got: String = lua
            .load(
                r##"
                local NIL, BLOCK, CLOSED = function() end, function() end, function() end
                local current
                local M = machine({}, NIL, BLOCK, CLOSED, {}, {}, function() return current end)
                local function mkerr(kind, msg, retryable)
                    return { kind = kind, msg = msg, retryable = retryable }
                end
                M.bind({}, {}, {}, mkerr, {}, function() end, function() end, {}, {}, {})
                local out = {}
                -- Not in a coroutine: refused, nothing started.
                local started = false
                current = { p = { ext = 0 } }
                local v, err = M.call(function() started = true end)
                out[#out + 1] = tostring(v) .. " " .. err.kind .. " " .. tostring(started)
                -- Refused by the host function: its kind, message, retryable.
                local p = { id = 42, ext = 0, main = { entry = { id = "app:e" } } }
                local cr = { p = p }
                current = cr
                local co = coroutine.create(function(...)
                    return M.call(function(a) return false, "NOT_FOUND", "no " .. a, true end, ...)
                end)
                local _, rv, rerr = coroutine.resume(co, "x")
                out[#out + 1] = tostring(rv) .. " " .. rerr.kind .. " " .. rerr.msg .. " " .. tostring(rerr.retryable)
                -- Started: waits in p.ops[op], counted on the host, yields BLOCK.
                local seen
                co = coroutine.create(function(...)
                    return M.call_as(function(...) seen = table.concat({ ... }, ",") return true, 7 end, ...)
                end)
                local _, token = coroutine.resume(co, "a", "b")
                out[#out + 1] = tostring(token == BLOCK) .. " " .. seen .. " " .. tostring(p.ops[7] == cr)
                    .. " " .. tostring(cr.ext) .. " " .. p.ext
                local _, a, b = coroutine.resume(co, "value", nil)
                out[#out + 1] = tostring(a) .. " " .. tostring(b) .. " " .. coroutine.status(co)
                return table.concat(out, " | ")
                "##,
            )
            .eval()
            .expect("run");
        assert_eq!(
            got,
            "nil INVALID false | nil NOT_FOUND no x true | true 42,app:e,a,b true true 1 | value nil dead"
        );
    }
}
