-- Warren's Lua kernel: payloads with a format, topic subscriptions, and the host calls behind the I/O modules.
-- One chunk with the other parts (see kernel.rs): it uses what earlier parts declare.

-- payload: values with a format, as Wippy's payloads (message payloads
-- are lua/any ones). Field 1 holds the value (or its encoding), f the
-- format when it is not lua/any.
local FORMAT = { JSON = "json/plain", YAML = "yaml/plain", STRING = "text/plain",
    BYTES = "application/octet-stream", MSGPACK = "application/msgpack", LUA = "lua/any",
    GOLANG = "golang/any", ERROR = "golang/error" }
local function format_of(pl)
    local f = rawget(pl, "f")
    if type(f) == "string" then return f end
    return is_err(rawget(pl, 1)) and FORMAT.ERROR or FORMAT.LUA
end
-- The Lua value of payload `pl`, decoding its encoding.
local function value_of(pl)
    local f, v = format_of(pl), rawget(pl, 1)
    if f == FORMAT.JSON then
        local decoded, err = H.json_decode(v)
        if err then return nil, mkerr("INTERNAL", err) end
        return decoded
    elseif f == FORMAT.MSGPACK then
        local decoded, err = H.msgpack_decode(v)
        if err then return nil, mkerr("INTERNAL", err) end
        return decoded
    end
    return v
end
local function new_payload(v, f) return setmetatable({ v, f = f }, PayloadMT) end
-- payload:data(): a payload with no encoding (every message's) is its
-- value as it is, read in C (machine/msg.rs); one with a format is
-- decoded by value_of (bound with M.bind_start, below: M.value_of until
-- then, this block's locals ending before it).
PayloadMethods.data = M.payload_data
M.value_of = value_of
PayloadMethods.unmarshal = PayloadMethods.data
function PayloadMethods:get_format() return format_of(self) end
function PayloadMethods:transcode(f)
    local v, err = value_of(self)
    if err then return nil, err end
    if f == FORMAT.LUA or f == FORMAT.GOLANG then return new_payload(v) end
    if f == FORMAT.ERROR then
        if is_err(v) then return new_payload(v) end
        return nil, mkerr("INTERNAL", "payload: only an error transcodes to golang/error")
    end
    if f == FORMAT.JSON then
        local s, jerr = H.json_encode(v)
        if not s then return nil, mkerr("INTERNAL", jerr) end
        return new_payload(s, f)
    elseif f == FORMAT.MSGPACK then
        local s, kind, msg = H.msgpack_encode(v)
        if not s then return nil, mkerr("INTERNAL", msg or kind) end
        return new_payload(s, f)
    elseif f == FORMAT.STRING or f == FORMAT.BYTES then
        if type(v) ~= "string" and type(v) ~= "number" then
            return nil, mkerr("INTERNAL", "payload: only a string or number transcodes to " .. f)
        end
        return new_payload(tostring(v), f)
    end
    return nil, mkerr("INTERNAL", "payload: cannot transcode to " .. describe(f))
end
EXTRA.payload = { format = FORMAT, new = function(v) return new_payload(v) end }

-- subscribe(topic, ch?): messages of `topic` go to channel `ch` (as their
-- payloads, as process.listen delivers them); without `ch`, a new one.
-- unsubscribe(ch) ends every subscription into `ch`.
function EXTRA.subscribe(topic, ch)
    if ch == nil then return process.listen(topic) end
    check_str(topic, "subscribe: topic", 2)
    if s_byte(topic, 1) == 64 or #topic > H.max_topic_bytes then error("subscribe: " .. H.topic_refused(topic), 2) end
    local s = state_of(ch, 2)
    local p = me()
    p.listens = p.listens or {}
    if p.listens[topic] then
        return nil, mkerr("ALREADY_EXISTS", s_format("subscribe: topic %q already has a channel", topic))
    end
    -- Fed by the host from now on: a coroutine waiting on it is not stuck.
    s.ext = true
    s.mb = p
    p.listens[topic] = s
    return ch
end
function EXTRA.unsubscribe(ch) return process.unlisten(ch) end
end

-- Host calls (hostcall.rs in warren-core): an I/O module starts an
-- operation through an H function, which answers `true, op` (or `false`
-- and the refusal's kind, message and retryable), and the calling
-- coroutine waits here until the "done" item wakes it with `value, err`.
-- Only that coroutine waits; the process's others run on. The modules
-- themselves are chunks of their own (modules/*.lua), given this API.
do
local function await(ok, op, msg, retryable)
    if not ok then return nil, mkerr(op, msg, retryable) end
    local cr = current
    local p = cr.p
    local ops = p.ops
    if not ops then
        ops = {}
        p.ops = ops
    end
    ops[op] = cr
    return block(cr, true)
end
-- Starts a host call with `start(...)` and waits for it, as `await`, in C
-- (machine/done.rs). Code that cannot be suspended (a callback of a C
-- function: a table.sort comparator, a string.gsub replacement, a
-- __tostring run by tostring) is refused with INVALID before anything
-- starts: otherwise the operation would run on (an INSERT done although the
-- caller saw an error) and its completion would wake the coroutine out of
-- whatever it waits on next.
local call = M.call
local function entry_id()
    local p = me()
    return p.id, p.main.entry.id
end
-- Has `fn(ok, value_or_kind, msg, retryable, details)` run (kernel-side,
-- never resumed as user code) when operation `op` of the current process
-- completes, instead of waking a coroutine; `forget` drops it.
local function watch(op, fn)
    local p = current.p
    local ops = p.ops
    if not ops then
        ops = {}
        p.ops = ops
    end
    ops[op] = fn
end
-- Starts an operation with `start(...)` and, if it started, has `fn`
-- watch it, with no preemption point in between (kernel frames are not
-- preempted): a result that arrives before the caller runs again still
-- finds its watcher.
local function start_watched(fn, start, ...)
    local ok, op, msg, retryable = start(...)
    if ok then watch(op, fn) end
    return ok, op, msg, retryable
end
local function forget(op)
    local ops = current.p.ops
    if ops then ops[op] = nil end
end
local function new_channel() return chan_state(1, true) end
local KAPI = { await = await, call = call, call_as = M.call_as, entry_id = entry_id, mkerr = mkerr, is_err = is_err, describe = describe, describe_cut = describe_cut,
    raw_getmetatable = raw_getmetatable, freeze = freeze, watch = watch, forget = forget, start_watched = start_watched,
    new_channel = new_channel, deliver = deliver, close_channel = close_state, payload = EXTRA.payload.new }
-- What every I/O module's functions keep as upvalues, shared by every
-- process: nobody's memory (the measure looks into those functions).
NOT_OWNED[KAPI], NOT_OWNED[H] = true, true
EXTRA.io_modules = {}
local sources = H.io_modules
KAPI.new_scanner = load(sources.scanner, "=warren-scanner", "t")(KAPI)
for name, src in next, sources do
    if name ~= "scanner" then
        local chunk = load(src, "=warren-" .. name, "t")
        EXTRA.io_modules[name] = chunk(KAPI, H)
    end
end
end

-- The root logger is frozen in place as it is made (modules.lua): freeze's
-- proxy would not be a logger its methods know.
local MODULES = { json = json, time = freeze(time, "time"), services = freeze(services, "services"),
    io = freeze(EXTRA.io, "io"), registry = freeze(EXTRA.registry, "registry"), ctx = freeze(EXTRA.ctx, "ctx"),
    events = freeze(EXTRA.events, "events"), logger = EXTRA.logger }
-- base64, hash, uuid, crypto: host functions (data/ in the Lua front-end).
for name, t in next, H.data_modules do MODULES[name] = freeze(t, name) end
for name, t in next, EXTRA.io_modules do MODULES[name] = freeze(t, name) end

-- Libraries (library.lua entries a process imports) run in the importing
