-- The `funcs` module (modules.md §5): calls of function.lua entries, each
-- a short-lived process of its own entry (funcs.rs in warren-core), and
-- the futures of asynchronous calls.
--
-- Executors and futures are opaque proxies whose state lives in tables
-- private to this chunk, so a forged or altered proxy reaches nothing.
-- The shape of the id is checked here; the grant (`funcs.call` for a
-- function of another namespace), the entry's existence and kind, and the
-- copy of arguments and context on the host side, in that order.

local K, H = ...
local call, call_as, entry_id, mkerr = K.call, K.call_as, K.entry_id, K.mkerr
local start_watched, forget = K.start_watched, K.forget
local new_channel, deliver, close_channel, payload = K.new_channel, K.deliver, K.close_channel, K.payload
local H_call, H_cancel, H_copy, H_duration = H.funcs_call, H.funcs_cancel, H.funcs_copy, H.parse_duration
local type, setmetatable, rawget, math_type = type, setmetatable, rawget, math.type
local s_format, s_find = string.format, string.find

local funcs = {}

local function invalid(msg) return nil, mkerr("INVALID", msg) end

---------------------------------------------------------------------------
-- Executors: immutable; every with_* returns a new one.
---------------------------------------------------------------------------
local EX = setmetatable({}, { __mode = "k" })
local ExMethods = {}
local ExMT = { __index = ExMethods, __metatable = false, __warren = "executor",
    __tostring = function() return "executor" end }

local function executor(ctx, timeout)
    local ex = setmetatable({}, ExMT)
    EX[ex] = { ctx = ctx, timeout = timeout }
    return ex
end
local DEFAULT = { timeout = 0 }

local function ex_state(ex, what)
    local st = EX[ex]
    if not st then error(s_format("%s: expected an executor (funcs.new())", what), 3) end
    return st
end

-- A timeout in nanoseconds from integer milliseconds or a duration string.
local MAX_MS = 9223372036854 -- the largest millisecond count that fits in ns
local function timeout_ns(v)
    if math_type(v) == "integer" then
        if v <= 0 then return nil, "the timeout must be a positive number of milliseconds" end
        if v > MAX_MS then
            return nil, s_format("the timeout %d ms is past the longest, %d ms (292 years)", v, MAX_MS)
        end
        return v * 1000000
    end
    if type(v) == "string" and #v <= 64 then
        local ns = H_duration(v)
        if ns and ns > 0 then return ns end
        return nil, s_format("the timeout %q is not a positive duration", v)
    end
    return nil, "the timeout must be integer milliseconds or a duration string such as \"5s\""
end

function funcs.new() return executor(nil, 0) end

-- The values are copied now (read raw, within max_message_bytes): the
-- executor is immutable, whatever later happens to the caller's table.
function ExMethods:with_context(values)
    local st = ex_state(self, "with_context")
    if type(values) ~= "table" or EX[values] then
        return invalid("with_context: the values must be a table")
    end
    local copy, kind, msg = H_copy((entry_id()), values)
    if copy == nil then return nil, mkerr(kind, msg) end
    return executor(copy, st.timeout)
end

function ExMethods:with_options(opts)
    local st = ex_state(self, "with_options")
    if type(opts) ~= "table" then return invalid("with_options: the options must be a table") end
    local t = rawget(opts, "timeout")
    if t == nil then return executor(st.ctx, st.timeout) end
    local ns, why = timeout_ns(t)
    if not ns then return invalid("with_options: " .. why) end
    return executor(st.ctx, ns)
end

function ExMethods:with_actor()
    ex_state(self, "with_actor")
    return invalid("with_actor: Warren has no security module (grants are static; see modules.md)")
end

function ExMethods:with_scope()
    ex_state(self, "with_scope")
    return invalid("with_scope: Warren has no security module (grants are static; see modules.md)")
end

local function bad_id(id) return type(id) ~= "string" or not s_find(id, "^[^:]+:[^:]+$") end
local function id_error(what)
    return false, "INVALID", what .. ": the function id must be a string \"namespace:name\""
end

-- The host function itself goes to K.call: a Lua frame of this chunk
-- between the host call and the kernel's wait could be preempted, and a
-- result arriving then would find nobody waiting for it.
local function call_with(st, what, id, ...)
    if bad_id(id) then return nil, mkerr("INVALID", what .. ": the function id must be a string \"namespace:name\"") end
    return call_as(H_call, id, st.ctx, st.timeout, ...)
end

---------------------------------------------------------------------------
-- Futures
---------------------------------------------------------------------------
local FUT = setmetatable({}, { __mode = "k" })
local FutMethods = {}
local FutMT = { __index = FutMethods, __metatable = false, __warren = "future",
    __tostring = function() return "future" end }

local function fut_state(f, what)
    local st = FUT[f]
    if not st then error(s_format("%s: expected a future", what), 3) end
    return st
end

-- Settles a future once: its result or error, into its channel, closed.
local function settle(st, result, err)
    if st.settled then return end
    st.settled = true
    st.result, st.err = result, err
    deliver(st.ch, err or result)
    close_channel(st.ch)
end

local function async_with(st, what, id, ...)
    local fst = { ch = new_channel() }
    local function done(ok, a, b, c, d)
        if ok then settle(fst, payload(a)) else settle(fst, nil, mkerr(a, b, c, d)) end
    end
    -- The watcher is in place before anything can preempt this caller:
    -- the kernel makes the host call itself and then registers it.
    local ok, op, msg, retryable
    if bad_id(id) then
        ok, op, msg = id_error(what)
    else
        local me, entry = entry_id()
        ok, op, msg, retryable = start_watched(done, H_call, me, entry, id, st.ctx, st.timeout, ...)
    end
    if not ok then return nil, mkerr(op, msg, retryable) end
    fst.op = op
    local f = setmetatable({}, FutMT)
    FUT[f] = fst
    return f
end

function FutMethods:response() return fut_state(self, "response").ch.proxy end
FutMethods.channel = FutMethods.response

function FutMethods:is_complete() return fut_state(self, "is_complete").settled == true end

function FutMethods:is_canceled() return fut_state(self, "is_canceled").canceled == true end

function FutMethods:result()
    local st = fut_state(self, "result")
    if not st.settled then return nil, nil end
    if st.err then return nil, st.err end
    return st.result, nil
end

function FutMethods:error()
    local st = fut_state(self, "error")
    local err = st.err
    if not err then return nil, false end
    return mkerr("INTERNAL", rawget(err, "_message")), true
end

function FutMethods:cancel()
    local st = fut_state(self, "cancel")
    if not st.settled then
        forget(st.op)
        st.canceled = true
        H_cancel((entry_id()), st.op)
        settle(st, nil, mkerr("CANCELED", "the function call was canceled"))
    end
    return true
end

---------------------------------------------------------------------------
-- The module
---------------------------------------------------------------------------
function funcs.call(id, ...) return call_with(DEFAULT, "funcs.call", id, ...) end
function funcs.async(id, ...) return async_with(DEFAULT, "funcs.async", id, ...) end
function ExMethods:call(id, ...) return call_with(ex_state(self, "call"), "call", id, ...) end
function ExMethods:async(id, ...) return async_with(ex_state(self, "async"), "async", id, ...) end

return funcs
