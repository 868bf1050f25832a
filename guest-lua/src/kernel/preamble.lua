-- Warren's Lua kernel: one instance per worker VM.
--
-- It schedules every Lua process of this worker as sandboxed coroutines:
-- channels, select, coroutine.spawn, timers and the process API live here, so
-- a blocked channel operation is a plain Lua yield to this loop and never a
-- Rust future. The host (H) owns everything that crosses processes.
--
-- Guarantees: a process sees only its own globals (its _ENV falls back to a
-- shared, read-only table of frozen libraries); kernel state is reachable by
-- no process; an error in a process ends that process only.

local H, traceback, raw_getmetatable, dbg = ...

local type, pairs, next, select, error, pcall, tostring =
    type, pairs, next, select, error, pcall, tostring
local setmetatable, getmetatable, rawget, rawset, rawequal, rawlen =
    setmetatable, getmetatable, rawget, rawset, rawequal, rawlen
-- H.resume is coroutine.resume that also tells a preemption, H.close
-- coroutine.close that lets the hook reach the `__close` handlers it runs
-- (see resume.rs).
local co_create, co_resume, co_yield, co_status, co_close, co_isyieldable =
    coroutine.create, H.resume, coroutine.yield, coroutine.status, H.close, coroutine.isyieldable
local t_pack, t_unpack, t_concat = table.pack, table.unpack, table.concat
local floor, math_type = math.floor, math.type
local s_format, s_sub, s_byte, s_find = string.format, string.sub, string.byte, string.find
local load, collectgarbage = load, collectgarbage

local H_next, H_exit = H.next, H.exit
-- A spawn: through H.spawn_plain (a C function, for no context and scalar
-- arguments: nil, booleans, numbers, strings), or H.spawn for anything
-- else, when the former answers nothing. A message out of this VM:
-- through H.send_plain (a C function; H.send when it answers nothing).
local h_spawn, h_send
do
    local H_spawn, H_send, H_spawn_plain, H_send_plain = H.spawn, H.send, H.spawn_plain, H.send_plain
    function h_spawn(me, id, host, link, monitor, ctx, ...)
        if ctx == nil then
            local pid, kind, msg, retryable = H_spawn_plain(me, id, host, link, monitor, ...)
            if pid ~= nil then return pid, kind, msg, retryable end
        end
        return H_spawn(me, id, host, link, monitor, ctx, ...)
    end
    function h_send(me, dest, topic, ...)
        local ok, kind, msg, retryable = H_send_plain(me, dest, topic, ...)
        if ok ~= nil then return ok, kind, msg, retryable end
        return H_send(me, dest, topic, ...)
    end
end
-- H.admit, H.measured, H.leave and H.verdict (rarer calls) are looked up in H where
-- used: the main chunk is at Lua's limit of 200 locals.
local H_log = H.log
-- The error Lua raises when an allocation does not fit under the ceiling
-- the host sets for the running process; the sandbox lets no process
-- catch it (see quota.rs).
local MEMERR = "not enough memory"
-- Whether `e` is that error: Lua's own string, or mlua's error object for
-- an allocation a host function made (processes cannot make userdata, so a
-- userdata error is the host's and its tostring runs no process code).
local function is_memerr(e)
    if e == MEMERR then return true end
    return type(e) == "userdata" and s_find(tostring(e), "^memory error") ~= nil
end
-- This VM's host's max_message_bytes (a VM serves one host).
local MAX_MESSAGE_BYTES = H.max_message_bytes

-- Kernel tokens are functions: `x == TOKEN` then never runs a metamethod
-- (Lua tries __eq only between two tables or two full userdata), so the
-- hot paths compare with the EQ instruction and no token reaches an __eq.
local BLOCK = function() end -- yielded by a coroutine that waits
local UPGRADE = function() end -- yielded by process.upgrade: replace this process's code
-- What co_resume returns after `true` for a preempted coroutine; yielded
-- upward by a coroutine whose nested coroutine was preempted.
local PREEMPT = H.preempted_marker
local H_doomed = H.doomed
local CLOSED = function() end
local NIL = function() end
local now_value -- the current time as a time value (set in the time section)

-- Text for a value without running any of its metamethods.
local function describe(v)
    local t = type(v)
    if t == "string" then return v end
    if t == "number" or t == "boolean" or t == "nil" then return tostring(v) end
    return "(" .. t .. " value)"
end

-- describe(v) for a value a process chose that an error message quotes: a
-- string cut at 64 bytes (set_options, errors.new and channel.new quoted
-- a megabyte key or argument whole, a megabyte error each).
local function describe_cut(v)
    if type(v) == "string" and #v > 64 then return s_sub(v, 1, 64) .. "..." end
    return describe(v)
end

-- A name a process gave, quoted as `%q` does, cut at 64 bytes: an error
-- that quoted a 96 MiB name whole took 300 ms in C.
local function quoted_name(s)
    if #s > 64 then return s_format("%q...", s_sub(s, 1, 64)) end
    return s_format("%q", s)
end


