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
-- H.resume is coroutine.resume that also tells a preemption (see resume.rs).
local co_create, co_resume, co_yield, co_status, co_close, co_isyieldable =
    coroutine.create, H.resume, coroutine.yield, coroutine.status, coroutine.close, coroutine.isyieldable
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
-- H.timer, H.admit, H.measured, H.leave and H.verdict (rarer calls) are looked up in H where
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


---------------------------------------------------------------------------
-- The machinery in C (machine/ in the crate): the run queue (parallel
-- arrays, no allocation per wake-up) and channels' waiters, receive, send
-- and host-fed delivery, over the tables made here.
---------------------------------------------------------------------------
local RQ = {} -- the run queue: four slots per entry (machine/runq.rs)

local current -- the coroutine record being run

-- The message a process is sending within this VM: the `bytes` it counts
-- as so far (the host's wire_size rules), and `owed`, the receiver the
-- host counted it for (H.admit) until it is delivered. A delivery that
-- fails on the sender's memory limit leaves `owed` set, and finish_one
-- reports that message as taken from the receiver's mailbox, so the
-- host's count of it stays true.
local SEND = { bytes = 0, owed = false }

-- Mailbox depth: every message sent to a process was counted by the host
-- (mailbox_limit); taking one out of its inbox or a listen channel is
-- reported back with the process's next step (a message handed to a
-- waiting coroutine wakes it, so that step comes).
-- process record -> messages taken since its last step (0 after a step:
-- the key stays until the process exits, so counting allocates nothing)
local TAKEN = {}
-- Channels: a full userdata with ChanMT (which no Lua code can set on
-- anything), its state the userdata's user value (M.new_chan, M.chan_of).
local ChanMethods = {}
local ChanMT = { __index = ChanMethods, __metatable = false, __warren = "channel",
    __name = "channel", __tostring = function(self) return "channel" end }

local M = H.machine(RQ, NIL, BLOCK, CLOSED, ChanMT, TAKEN,
    function() return current end)
-- wake(cr, a, b, c) queues coroutine record `cr` to be resumed with a, b, c
-- (a slot written before it is counted: a memory error leaves the queue as
-- it was); rq_len() counts them.
local wake, rq_len = M.wake, M.rq_len

-- A wait made from code that cannot be suspended (a coroutine resumed from
-- a table.sort comparator, a string.gsub replacement, a __tostring run by
-- tostring) could not be passed up to this loop: its waiter, left behind,
-- would wake the coroutine out of whatever it waits on next. Such a wait
-- is refused before anything is registered (machine/chan.rs says the same).
local CANNOT_WAIT = "this call waits, and the code making it cannot be suspended "
    .. "(it runs inside a C function's callback, such as a table.sort comparator)"
local function cannot_wait(cr) return not co_isyieldable() or cr.noyield end

local function block(cr, ext)
    if ext then
        cr.ext = true
        cr.p.ext = cr.p.ext + 1
    end
    return co_yield(BLOCK)
end

---------------------------------------------------------------------------
-- Small FIFO queues (the same layout as machine/raw.rs reads).
---------------------------------------------------------------------------
-- The `false` pre-sizes the array part, so the first push does not rehash.
local function qnew() return { false, h = 1, t = 0 } end
local function qpush(q, v) -- the slot first, as in `wake`
    local t = q.t + 1
    q[t] = v
    q.t = t
end
local function qpop(q)
    local h = q.h
    if h > q.t then return nil end
    local v = q[h]
    q[h] = nil
    if h == q.t then q.h, q.t = 1, 0 else q.h = h + 1 end
    return v
end
local function qlen(q) return q.t - q.h + 1 end

-- A waiter is a select's record { cr, sel, v } or, for a plain receive or
-- send, the coroutine record itself (which has no cr or sel field, and a
-- `v` only while it waits to send that value): a blocked receive or send
-- then allocates nothing. `w.cr or w` is the coroutine either way.
-- A channel's receivers: the oldest in `s.rw`, later ones in the queue
-- `s.rq` (made only when a second one waits), so the usual single
-- receiver, such as an idle process on its inbox, needs no queue; its
-- blocked senders likewise in `s.sw` and `s.sq`. rq_push(s, w) and
-- sq_push(s, w) add one, rq_pop(s) and sq_pop(s) take the next that may
-- be woken (claiming its select), or nil.
local rq_push, rq_pop, sq_push, sq_pop = M.rq_push, M.rq_pop, M.sq_push, M.sq_pop

-- process record -> { entry, args } of a process.upgrade under way (the
-- entry is the host's, never a value the process handed over).
local UPGRADES = setmetatable({}, { __mode = "k" })
local function note_taken(p)
    TAKEN[p] = (TAKEN[p] or 0) + 1
end
-- resume_next(limit, left) resumes wake-ups in batches, each between its
-- process's accounting (step.rs), which reads TAKEN[p] and sets it back
-- to 0 itself unless the coroutine raised; it returns how many it took,
-- what is left of the batch, and what it leaves to finish_one.
local resume_next, done_next = M.resume_next, M.done_next

local new_chan, chan_of = M.new_chan, M.chan_of
local function chan_state(cap, ext)
    -- buf, rq and sq are made on first use, rw and sw when a receiver or
    -- sender waits; closed is nil until closed, cap nil for 0: an idle inbox has 4
    -- fields (4 hash slots, not 8). new_chan sets `proxy`, the channel.
    local s = { cap = cap > 0 and cap or nil, ext = ext or nil, proxy = false }
    new_chan(s)
    return s
end

local function state_of(ch, level)
    local s = chan_of(ch)
    if not s then error("expected a channel, got " .. type(ch), level + 1) end
    return s
end

-- try_recv(s): non-blocking receive, `ready, value, ok`; try_send(s, v,
-- level): non-blocking send, true when done, raising on a closed channel;
-- deliver(s, v): host-fed delivery, which never blocks (the host's queues
-- bound it).
local try_recv, try_send, deliver = M.try_recv, M.try_send, M.deliver

local function close_state(s)
    if s.closed then return end
    s.closed = true
    while true do
        local w = rq_pop(s)
        if not w then break end
        wake(w.cr or w, nil, false, w.sel and s.proxy)
    end
    while true do
        local w = sq_pop(s)
        if not w then break end
        -- A plain send waits as its coroutine record, its value in `v`.
        local cr = w.cr
        if not cr then
            cr = w
            w.v = nil
        end
        wake(cr, CLOSED, false, w.sel and s.proxy)
    end
end

-- ch:send(v) and ch:receive() (woken with exactly (value, ok): see
-- finish_one) wait by yielding BLOCK from C.
ChanMethods.send, ChanMethods.receive = M.send, M.receive

function ChanMethods:close()
    close_state(state_of(self, 2))
end

local CaseMT = { __metatable = false, __warren = "channel case" }
local CASE = setmetatable({}, { __mode = "k" })
-- timer proxy -> its state; methods look `self` up here, so a forged
-- timer table reaches no process's timers.
local TIMERS = setmetatable({}, { __mode = "k" })
-- coroutine.wrap's functions -> the coroutine each drives, for measure().
local WRAPPED = setmetatable({}, { __mode = "k" })
-- Other objects a process holds -> what the kernel keeps for them (a
-- registry snapshot's entries), measured as the process's.
local HELD = setmetatable({}, { __mode = "k" })

function ChanMethods:case_send(v)
    local s = state_of(self, 2)
    local c = setmetatable({}, CaseMT)
    CASE[c] = { s = s, send = true, v = v }
    return c
end

function ChanMethods:case_receive()
    local s = state_of(self, 2)
    local c = setmetatable({}, CaseMT)
    CASE[c] = { s = s, send = false }
    return c
end

local channel = {}

function channel.new(n)
    if n ~= nil and (math_type(n) ~= "integer" or n < 0) then
        error("channel.new: capacity must be a non-negative integer, got " .. describe(n), 2)
    end
    return chan_state(n or 0, false).proxy
end

-- `channel.select(cases, true)` is Wippy's non-blocking form, as `default = true`.
function channel.select(cases, nonblocking)
    if type(cases) ~= "table" then error("channel.select: expected a table of cases", 2) end
    local n = rawlen(cases)
    -- Most cases one select may wait on (each is a waiter record in a queue).
    if n > 4096 then error("channel.select: more than 4096 cases", 2) end
    local recs = {}
    for i = 1, n do
        local c = CASE[rawget(cases, i)]
        if not c then error("channel.select: case " .. i .. " is not a channel case", 2) end
        recs[i] = c
    end
    for i = 1, n do
        local c = recs[i]
        if c.send then
            if try_send(c.s, c.v, 2) then return { channel = c.s.proxy, ok = true } end
        else
            local ready, v, ok = try_recv(c.s)
            if ready then return { channel = c.s.proxy, value = v, ok = ok } end
        end
    end
    if rawget(cases, "default") or nonblocking == true then return { default = true, ok = true } end
    local cr = current
    if cannot_wait(cr) then error(CANNOT_WAIT, 2) end
    local sel = { done = false }
    local ext = false
    for i = 1, n do
        local c = recs[i]
        local s = c.s
        if c.send then
            sq_push(s, { cr = cr, sel = sel, v = (c.v == nil) and NIL or c.v })
        else
            rq_push(s, { cr = cr, sel = sel })
        end
        ext = ext or s.ext
    end
    local v, ok, ch = block(cr, ext)
    if v == CLOSED then error("send on closed channel", 2) end
    return { channel = ch, value = v, ok = ok }
end

-- Text of an error value, for a process's own code to call inside its own
-- resume: a __tostring metamethod is user code, so it runs here, preemptible
-- and under the process's limits (preempt.rs lets a preemption through this
-- frame), and a failing or non-string result falls back to describe().
local function user_text(v)
    local t = type(v)
    if t ~= "table" and t ~= "userdata" and t ~= "channel" then return describe(v) end
    local mt = raw_getmetatable(v)
    local f = type(mt) == "table" and rawget(mt, "__tostring")
    if type(f) ~= "function" then return describe(v) end
    local ok, s = pcall(f, v)
    if not ok and (s == MEMERR or H_doomed()) then error(s, 0) end
    if ok and type(s) == "string" then
        if #s > 16384 then s = s_sub(s, 1, 16384) end -- longest text kept
        return s
    end
    return describe(v)
end

-- tostring(v) as a process expects it (its __tostring honoured, through
-- user_text); for print and error messages built for the process.
local function user_tostring(v)
    local t = type(v)
    if t == "table" or t == "userdata" or t == "channel" then
        local mt = raw_getmetatable(v)
        if type(mt) == "table" and rawget(mt, "__tostring") ~= nil then return user_text(v) end
    end
    return tostring(v)
end

---------------------------------------------------------------------------
-- errors
---------------------------------------------------------------------------
-- Kinds have Wippy's string values ("NotFound", ..., and UNKNOWN is the
-- empty kind an error made without one has); the host names them
-- NOT_FOUND, ...: LUA_KIND and HOST_KIND translate at the boundary. A kind
-- a process makes up is kept as it is (and is UNKNOWN to the host).
local LUA_KIND, HOST_KIND = {}, {}
local errors = {}
do
-- host name -> Lua name, from warren-core's one list (modules.rs).
for host, lua in next, H.error_kinds do
    errors[host] = lua
    LUA_KIND[host] = lua
    LUA_KIND[lua] = lua
    HOST_KIND[lua] = host
    HOST_KIND[host] = host
end
end
local ERRSET = setmetatable({}, { __mode = "k" })
local ErrMethods = {}
-- __warren_error: error objects cross processes and languages as errors
-- (a tagged map; see convert.rs). `_text` is the chained text of a wrapped
-- error; `_message` stays the innermost message (as in Wippy).
local ErrMT = { __index = ErrMethods, __metatable = false, __warren_error = true,
    __tostring = function(e)
        local text = rawget(e, "_text")
        if type(text) == "string" then return text end
        return describe(rawget(e, "_message"))
    end }

-- Error objects keep their fields in plain keys so that they cross process
-- boundaries as data; the methods are the documented interface. `kind` is
-- a host kind name or a Lua one; retryable is true, false or nil (unset).
local function mkerr(kind, message, retryable, details, stack)
    local e = setmetatable({ _kind = LUA_KIND[kind] or "", _message = describe(message),
        _retryable = retryable, _details = details, _stack = stack or "" }, ErrMT)
    ERRSET[e] = true
    return e
end

-- Error objects, including ones that arrived from another process (revived
-- with ErrMT by the host).
local function is_err(v)
    return ERRSET[v] ~= nil or (type(v) == "table" and raw_getmetatable(v) == ErrMT)
end

function ErrMethods:kind() return rawget(self, "_kind") end
function ErrMethods:message() return rawget(self, "_message") end
function ErrMethods:retryable() return rawget(self, "_retryable") end
function ErrMethods:details() return rawget(self, "_details") end
function ErrMethods:stack() return rawget(self, "_stack") end

-- The text of an error object: its chain when wrapped.
local function err_text(e)
    local text = rawget(e, "_text")
    if type(text) == "string" then return text end
    return describe(rawget(e, "_message"))
end

do
-- Longest kind a process may give an error: kinds are labels, and they
-- travel with every copy of the error.
local MAX_KIND = 128
-- errors.new and errors.wrap read their arguments raw and run a message's
-- __tostring only through user_tostring (preempt.rs lets a preemption
-- through these frames: they change no kernel state before they return).
-- errors.new(message), errors.new{...}, or errors.new(kind, message). An
-- error made without a kind has the empty kind, and retryable nil.
function errors.new(spec, message2)
    local stack = traceback(nil, 2)
    local kind, message, retryable, details = "", spec, nil, nil
    if type(spec) == "string" and message2 ~= nil and LUA_KIND[spec] then
        kind, message = LUA_KIND[spec], message2
    elseif type(spec) == "table" and not is_err(spec) then
        kind, message = rawget(spec, "kind"), rawget(spec, "message")
        retryable, details = rawget(spec, "retryable"), rawget(spec, "details")
        if kind == nil then kind = "" end
        if type(kind) ~= "string" or #kind > MAX_KIND then
            error("errors.new: kind must be a string of at most " .. MAX_KIND .. " bytes, got " .. describe(kind), 2)
        end
        kind = LUA_KIND[kind] or kind
        if message == nil then message = "error" end
        if retryable ~= nil then retryable = retryable and true or false end
    end
    local e = setmetatable({ _kind = kind, _message = user_tostring(message), _retryable = retryable,
        _details = details, _stack = stack }, ErrMT)
    ERRSET[e] = true
    return e
end

-- errors.wrap(err, msg): the same kind, retryable, details and message;
-- tostring gives "msg: <the wrapped error's text>".
function errors.wrap(err, msg)
    if err == nil then return nil end
    local stack = traceback(nil, 2)
    local e
    if is_err(err) then
        e = { _kind = rawget(err, "_kind"), _message = rawget(err, "_message"),
            _retryable = rawget(err, "_retryable"), _details = rawget(err, "_details"),
            _text = user_tostring(msg) .. ": " .. err_text(err), _stack = stack }
    else
        local text = user_tostring(err)
        e = { _kind = "", _message = text, _text = user_tostring(msg) .. ": " .. text, _stack = stack }
    end
    setmetatable(e, ErrMT)
    ERRSET[e] = true
    return e
end
end

-- errors.call_stack(err): the frames of an error's stack as a table,
-- `{ thread = "main", frames = { { source =, line =, name = }, ... } }`,
-- parsed from its traceback; nil for anything but an error object.
function errors.call_stack(err)
    if not is_err(err) then return nil end
    local stack = rawget(err, "_stack")
    if type(stack) ~= "string" then return nil end
    local frames = {}
    for source, line, what in stack:gmatch("\n%s*([^\n]-):(%d+): in ([^\n]*)") do
        frames[#frames + 1] = { source = source, line = tonumber(line), name = what:match("'([^']+)'") or what }
    end
    return { thread = "main", frames = frames }
end

function errors.is(err, kind)
    -- A string compared with a string: no __eq of a forged kind can run.
    local k = is_err(err) and rawget(err, "_kind")
    if type(k) ~= "string" or type(kind) ~= "string" then return false end
    return k == (LUA_KIND[kind] or kind)
end

-- Fields of any error value, for exits and events, with the host's kind
-- name: raw reads only, each checked (an error object is a plain table its
-- process may have rawset).
local function err_fields(v)
    if is_err(v) then
        local retryable = rawget(v, "_retryable") == true
        return HOST_KIND[rawget(v, "_kind")] or "UNKNOWN", err_text(v), retryable, rawget(v, "_details")
    end
    return "UNKNOWN", describe(v), false, nil
end

-- A host call's failure triple as `nil, err`.

---------------------------------------------------------------------------
-- Processes
---------------------------------------------------------------------------
local procs = {}       -- pid integer -> process record
local bypid = {}       -- pid string -> process record, for sends within this VM
-- Threads the kernel schedules are made by M.kthread, marked in the
-- thread itself, which process code cannot resume or close
-- (M.is_kthread). M.prime(th, ...) puts a new coroutine's first values (at
-- most 18: a fresh thread holds them without growing, step.rs) on its
-- stack; it is then woken with M.PRIMED alone, so no table packs them. A
-- start or coroutine.spawn with more than 16 arguments packs them.
-- (Fields of M, not locals: the main chunk is near Lua's 200 locals.)

-- A host-fed channel of a process (inbox, events), made on first use.
local function host_chan(p, key)
    local s = p[key]
    if not s then
        s = chan_state(0, true)
        p[key] = s
    end
    return s
end
local function inbox_state(p)
    local s = p.inbox
    if not s then
        s = host_chan(p, "inbox")
        s.mb = p -- holds messages: taking one is reported
    end
    return s
end

-- A per-process table made on first use, so idle processes carry none.
local function lazy_table(p, key)
    local t = p[key]
    if not t then
        t = {}
        p[key] = t
    end
    return t
end

-- A main coroutine's record is made with its entry (4 hash slots from the
-- start: one rehash fewer per spawn); others have none (2 slots).
-- A coroutine record: `th`, its thread, false once the coroutine ended or
-- was dropped (that is its death mark: a field of its own would rehash
-- every record at its end); `p`; `entry` for a main coroutine.
local function new_cr(p, fn, entry)
    local th = M.kthread(fn)
    -- ext (waits on a host-fed channel) set when it does
    local cr = entry and { th = th, p = p, entry = entry } or { th = th, p = p }
    if p.main then -- the main coroutine is p.main; others are tracked in p.crs
        lazy_table(p, "crs")[cr] = true
    end
    p.live = p.live + 1
    return cr
end

-- Ends every coroutine of `p` and forgets its timers. The coroutines are
-- dropped, not closed: closing one would run its pending to-be-closed
-- variables (user code) here, outside any accounted resume. A process that
-- needs cleanup does it before it returns.
local function close_all(p)
    p.main.th = false
    local crs = p.crs
    if crs then
        for cr in next, crs do cr.th = false end
        p.crs = nil
    end
    p.timers, p.io_wait, p.ops = nil, nil, nil
end

local function exit_proc(p, ok, v)
    if p.env == false then return end
    p.env = false
    TAKEN[p] = nil
    procs[p.id] = nil
    bypid[p.pid] = nil
    close_all(p)
    if ok then
        H_exit(p.id, true, v)
    else
        H_exit(p.id, false, err_fields(v))
    end
end

local function deadlock(p)
    H_log(p.id, "error", "deadlock: every coroutine of " .. p.pid .. " waits on a channel nothing can send to")
    exit_proc(p, false, mkerr("INTERNAL", "deadlock: every coroutine waits on a channel nothing can send to"))
end

local ENV_MT -- set below, once the globals exist

local function proc_main(p, entry, ...)
    local mod = entry.chunk(p.env, entry.types)
    -- A chunk that returns nothing was the whole program (a script's
    -- top-level code): it has run.
    if mod == nil then return nil end
    local main = mod
    if type(mod) == "table" then main = mod[entry.method] end
    if type(main) ~= "function" then
        error(s_format("entry %s: the script must return a function or a table with function %q",
            entry.id, entry.method), 0)
    end
    return main(...)
end

-- The bottom of a process started with more than 16 arguments, or
-- upgraded: they come packed, and are unpacked in the process itself.
local function proc_main_packed(p, entry, args)
    return proc_main(p, entry, t_unpack(args, 1, args.n))
end

-- The bottom of a coroutine.spawn with more than 16 arguments.
local function trampoline(fn, args)
    return fn(t_unpack(args, 1, args.n))
end

-- An error value whose text is the process's own code: a table or
-- userdata (not an error object) with a __tostring.
local function needs_words(v)
    local t = type(v)
    if (t ~= "table" and t ~= "userdata") or is_err(v) then return false end
    local mt = raw_getmetatable(v)
    return type(mt) == "table" and rawget(mt, "__tostring") ~= nil
end

-- The bottom frame of a process's last coroutine: turns its error value
-- into text with the process's own __tostring (user_text), then fails.
local function last_words_main(e)
    error(user_text(e), 0)
end

-- A process that failed with such a value ends in a last coroutine of its
-- own, resumed like any other (accounted, preemptible, under its limits),
-- instead of the kernel running its __tostring; its other coroutines are
-- dropped first. (A pcall around every main would cost each idle process
-- a stack past Lua's initial one: 900 bytes.)
local function last_words(p, e)
    local entry = p.main.entry
    close_all(p)
    p.listens, p.exec = nil, nil -- as for an upgrade: nothing may wake the dropped ones
    p.live, p.nready, p.ext = 0, 0, 0
    p.main = nil
    local cr = new_cr(p, last_words_main, entry)
    p.main = cr
    p.last = true
    wake(cr, e)
end

-- Ends process `p` with error value `e`, or first has it say why.
local function fail_proc(p, e)
    if not p.last and needs_words(e) then
        last_words(p, e)
    else
        exit_proc(p, false, e)
    end
end

local function new_env()
    local env = setmetatable({ _G = false }, ENV_MT) -- pre-sized: no rehash below
    rawset(env, "_G", env)
    return env
end

-- Hot upgrade: the process keeps its pid, mailbox (inbox and events
-- channels), names, links and monitors; its coroutines, listen channels,
-- timers and globals are replaced by a fresh run of `entry`'s main.
local function drop_bus(p)
    local bus = p.bus
    if not bus then return end
    p.bus = nil
    for id, s in next, bus do
        H.bus_unsubscribe(p.id, id)
        close_state(s)
    end
end

local function upgrade(p, entry, args)
    close_all(p)
    drop_bus(p)
    p.listens, p.exec = nil, nil
    p.live, p.nready, p.ext = 0, 0, 0
    p.env, p.main = new_env(), nil
    local cr = new_cr(p, proc_main_packed, entry)
    p.main = cr
    wake(cr, p, entry, args)
    H_log(p.id, "info", "upgraded to " .. entry.id)
end

-- machine/start.rs does the same for a start without context values and
-- at most 16 arguments: the two are kept alike.
local function start(id, pidstr, entry, ctx, ...)
    local env = new_env()
    -- At most 8 fields once it has an inbox (so 8 hash slots, not 16): the
    -- entry is kept on the main coroutine's record, taken counts in TAKEN,
    -- and an ended process is marked by `env = false` (exit_proc), not by
    -- a ninth field.
    local p = { id = id, pid = pidstr, env = env, live = 0, nready = 0, ext = 0 }
    if ctx ~= nil then p.ctx = ctx end
    procs[id] = p
    bypid[pidstr] = p
    local primed = select("#", ...) <= 16
    local cr = new_cr(p, primed and proc_main or proc_main_packed, entry)
    p.main = cr
    if primed then
        M.prime(cr.th, p, entry, ...)
        wake(cr, M.PRIMED)
    else
        wake(cr, p, entry, t_pack(...))
    end
end

local function finished(cr, r1, r2)
    local p = cr.p
    cr.th = false
    if p.crs then p.crs[cr] = nil end
    p.live = p.live - 1
    if cr == p.main then
        if r1 == nil and r2 ~= nil then
            fail_proc(p, r2)
        else
            exit_proc(p, true, r1)
        end
    end
end

---------------------------------------------------------------------------
-- Measuring a process: what it can reach, for memory_per_process.
---------------------------------------------------------------------------
-- Objects every process shares (libraries, kernel tables): never charged.
local NOT_OWNED = setmetatable({}, { __mode = "k" })
local measure -- function(p): bytes, exact (below)
do
local d_getlocal, d_getupvalue, d_getinfo = dbg.getlocal, dbg.getupvalue, dbg.getinfo
local KERNEL_SOURCE = d_getinfo(1, "S").source
-- Rough sizes of Lua 5.4 objects on a 64-bit build, in bytes. A thread is
-- its lua_State (208) plus its stack: 28 slots (448) when made, 45 or more
-- while it runs, cut back when it waits (vendor/lua-src/WARREN.md); counted
-- as 1 KB (counted as 200 before, a hoard of coroutines was measured at a
-- fifth of what it held).
local SIZE_TABLE, SIZE_SLOT, SIZE_STRING, SIZE_FUNCTION, SIZE_THREAD, SIZE_LOCAL =
    56, 32, 24, 48, 1000, 16

-- Frames of one coroutine looked at: reaching frame n costs n steps.
local MAX_LEVELS = 1000

-- Pushes what the frames of `th` hold; false if it is too deep to look at
-- every frame.
local function measure_thread(th, push)
    local level = 0
    while true do
        if level >= MAX_LEVELS then return false end
        local info = d_getinfo(th, level, "f")
        if not info then return true end
        push(info.func)
        local i = 1
        while true do
            local name, v = d_getlocal(th, level, i)
            if name == nil then break end
            push(v)
            i = i + 1
        end
        level = level + 1
    end
end

-- About how many bytes `p` holds: everything reachable from its globals,
-- coroutines and mailbox that no other process shares. Kernel functions
-- are not looked into (their upvalues reach every process). The second
-- result is false when a coroutine was too deep to look at completely.
function measure(p)
    local seen = { [p.main.entry] = true }
    local stack, n, total, exact = {}, 0, 0, true
    local function push(v)
        local t = type(v)
        if (t == "table" or t == "string" or t == "function" or t == "thread"
            or t == "channel") and not seen[v] and not NOT_OWNED[v] then
            seen[v] = true
            n = n + 1
            stack[n] = v
        end
    end
    push(p)
    while n > 0 do
        local v = stack[n]
        stack[n] = nil
        n = n - 1
        local t = type(v)
        if t == "string" then
            total = total + SIZE_STRING + #v
        elseif t == "table" then
            total = total + SIZE_TABLE
            for k, x in next, v do
                total = total + SIZE_SLOT
                push(k)
                push(x)
            end
            push(raw_getmetatable(v))
            -- What the kernel holds for objects the process holds.
            push(CASE[v])
            push(TIMERS[v])
            push(HELD[v])
        elseif t == "channel" then -- a userdata and its state
            total = total + SIZE_TABLE
            push(chan_of(v))
        elseif t == "function" then
            total = total + SIZE_FUNCTION
            push(WRAPPED[v])
            if d_getinfo(v, "S").source ~= KERNEL_SOURCE then
                local i = 1
                while true do
                    local name, x = d_getupvalue(v, i)
                    if name == nil then break end
                    push(x)
                    i = i + 1
                end
            end
        else
            total = total + SIZE_THREAD
            exact = measure_thread(v, function(x)
                total = total + SIZE_LOCAL
                push(x)
            end) and exact
        end
    end
    return total, exact
end
end

-- Set when a process used up its slice: the worker gets control back to
-- fire timers and run its other front-ends before anything else runs.
local slice_over = false

-- Finishes a wake-up that resume_next left to the kernel: resumed through
-- the step with `current` set (a plain receive is woken with (value, ok)
-- only, which it returns; a select also gets its channel: the step passes
-- `c` only when it is not nil), it raised, got a verdict, was preempted,
-- ended, or may have left its process deadlocked.
local function finish_one(cr, p, ok, kind, r1, r2, r3)
    local why
    if not ok then
        r1 = kind
        local taken = TAKEN[p]
        if taken then TAKEN[p] = nil end
        kind, why = H.leave(p.id, is_memerr(r1), taken or 0)
    elseif kind == false then
        kind, why = H.verdict()
    end
    local owed = SEND.owed
    if owed then -- a send failed between H.admit and its delivery
        SEND.owed = false
        if owed.env then note_taken(owed) end
    end
    if kind == true then kind, why = H.measured(p.id, measure(p)) end
    if kind then
        exit_proc(p, false, mkerr(kind, why))
        return
    end
    if ok and r1 == PREEMPT then
        wake(cr) -- preempted: behind everything already runnable
        slice_over = true
        return
    end
    if ok and r1 == BLOCK then -- the common case: it waits
        -- nothing to do
    elseif not ok then
        -- A function call's raised text is INTERNAL (modules.md §5).
        if type(r1) == "string" and p.main.entry.func then r1 = mkerr("INTERNAL", r1) end
        fail_proc(p, r1)
    elseif co_status(cr.th) == "dead" then
        finished(cr, r1, r2)
    elseif r1 == UPGRADE and UPGRADES[p] then
        local u = UPGRADES[p]
        UPGRADES[p] = nil
        upgrade(p, u[1], u[2])
    else
        exit_proc(p, false, mkerr("INVALID", "attempt to yield from outside a coroutine"))
    end
    if p.env and p.nready == 0 and p.ext == 0 and p.live > 0 then
        deadlock(p)
    end
end

---------------------------------------------------------------------------
-- Items from the host.
---------------------------------------------------------------------------
local MsgMethods, PayloadMethods = {}, {}
local MsgMT = { __index = MsgMethods, __metatable = false }
local PayloadMT = { __index = PayloadMethods, __metatable = false }
-- msg:payload() for any payload count but 1 (the machine's msg_payload
-- makes the usual one itself): a list, or the error for a table that is
-- no message. Called from C, so its error names the caller's caller.
local function payload_list(self)
    local n = rawget(self, 3)
    if n == 1 then return setmetatable({ rawget(self, 4) }, PayloadMT) end
    if math_type(n) ~= "integer" then error("expected a message, got " .. type(self), 3) end
    if n <= 1 then return setmetatable({ rawget(self, 4) }, PayloadMT) end
    local list = {}
    for i = 1, n do list[i] = setmetatable({ rawget(self, 3 + i) }, PayloadMT) end
    return list
end
-- topic(), from() and payload() read the record raw, in C.
MsgMethods.topic, MsgMethods.from, MsgMethods.payload = M.msg_topic, M.msg_from, M.msg_payload
-- PayloadMethods:data() and the others are defined with payload (below).

-- A message for a topic nothing listens to goes to the inbox once the
-- process has subscribed to it (`process.inbox()`); until then it waits
-- in `p.pending`, and a later `listen` of its topic takes it (as in Wippy).
local function to_inbox(p, m)
    local s = p.inbox
    if s then return deliver(s, m) end
    local q = p.pending
    if not q then
        q = qnew()
        p.pending = q
    end
    qpush(q, m)
end

-- A message with one payload (the usual case), without varargs.
local function on_msg1(p, topic, from, v)
    local listens = p.listens
    local listen = listens and listens[topic]
    if listen then
        if listen.msgs then v = setmetatable({ topic, from, 1, v }, MsgMT) end
        deliver(listen, v)
    else
        local m, s = setmetatable({ topic, from, 1, v }, MsgMT), p.inbox
        if s then deliver(s, m) else to_inbox(p, m) end -- to_inbox, inlined
    end
end

-- An event of the bus (topic "@bus", which no process can send on): to the
-- channel of its subscription, or dropped (and counted as taken) when the
-- subscription was just closed.
local function on_bus(p, id, evt)
    local s = p.bus and p.bus[id]
    if s and not s.closed then deliver(s, evt) else note_taken(p) end
end

local function on_msg(p, topic, from, ...)
    local n = select("#", ...)
    if n == 1 then return on_msg1(p, topic, from, (...)) end
    if topic == "@bus" then return on_bus(p, ...) end
    local listen = p.listens and p.listens[topic]
    if listen then
        deliver(listen, listen.msgs and setmetatable({ topic, from, n, ... }, MsgMT) or { ... })
    else
        to_inbox(p, setmetatable({ topic, from, n, ... }, MsgMT))
    end
end

-- Event kinds have Wippy's values; the host names them EXIT, LINK_DOWN
-- and CANCEL.
local EVENT_KIND = { EXIT = "pid.exit", LINK_DOWN = "pid.link.down", CANCEL = "pid.cancel" }

local function on_event(p, kind, from, ok, a, b, c, d)
    if kind == "CANCEL" then
        deliver(host_chan(p, "events"), { kind = "pid.cancel", from = from, reason = ok, at = now_value() })
        return
    end
    local result
    if ok then result = { value = a } else result = { error = mkerr(a, b, c, d) } end
    local waiter = kind == "EXIT" and p.exec and p.exec[from]
    if waiter then
        p.exec[from] = nil
        if ok then wake(waiter, true, a) else wake(waiter, false, result.error) end
        return
    end
    deliver(host_chan(p, "events"), { kind = EVENT_KIND[kind] or kind, from = from, result = result, at = now_value() })
end

-- Handles one item from H.next (`more, id, kind, ...`) and returns whether
-- more were waiting (then the kernel asks again before it runs anyone).
local function handle(more, id, kind, ...)
    if id == nil then return false end
    if kind == "start" then
        start(id, ...)
        return more
    end
    local p = procs[id]
    if kind == "kill" then
        if p then exit_proc(p, false, mkerr(...)) else H_exit(id, false, ...) end
        return more
    end
    if not p then return more end
    if kind == "msg" then
        on_msg(p, ...)
    elseif kind == "event" then
        on_event(p, ...)
    elseif kind == "done" then
        -- A host call of this process completed (see `await`).
        local op, ok, a, b, c, d = ...
        local ops = p.ops
        local cr = ops and ops[op]
        if cr then
            ops[op] = nil
            -- A function: a watcher kept by a module (a funcs future); it
            -- runs kernel code only.
            if type(cr) == "function" then cr(ok, a, b, c, d)
            elseif ok then wake(cr, a) else wake(cr, nil, mkerr(a, b, c, d)) end
        end
    elseif kind == "wake" then
        -- A terminal read of this process completed (see the io module).
        local cr = p.io_wait
        if cr then
            p.io_wait = nil
            wake(cr)
        end
    elseif kind == "timer" then
        local id2 = ...
        local timers = p.timers
        local fire = timers and timers[id2]
        if fire then
            timers[id2] = nil
            fire(p, id2)
        end
    end
    return more
end

local function run(budget)
    local done, left = 0, 0
    while true do
        if left <= 0 then
            -- Ask the host only when it has something (has_items is a C
            -- call; H.next converts an item into Lua values). A host
            -- call's value for a coroutine in `await` goes to it in C
            -- (done_next).
            while M.has_items() and (done_next() or handle(H_next())) do end
            left = rq_len()
            if left <= 0 then return false end
        end
        -- The wake-ups queued now, resumed in C batch after batch until
        -- one needs the kernel, the host has an item, or the budget is
        -- spent at the end of a batch.
        local n, rest, cr, p, ok, kind, r1, r2, r3 = resume_next(budget - done, left)
        done, left = done + n, rest
        if cr ~= nil then
            finish_one(cr, p, ok, kind, r1, r2, r3)
            if slice_over then
                slice_over = false
                return true
            end
        end
        if left <= 0 and done >= budget then return true end
    end
end

---------------------------------------------------------------------------
-- The process API.
---------------------------------------------------------------------------
local function me()
    local cr = current
    if not cr then error("not inside a process", 3) end
    return cr.p
end

local function check_str(v, what, level)
    if type(v) ~= "string" then
        error(s_format("%s must be a string, got %s", what, type(v)), level + 1)
    end
end

local function ok_or_err(ok, kind, msg, retryable)
    if ok then return ok end
    return nil, mkerr(kind, msg, retryable)
end

local process = { event = { EXIT = EVENT_KIND.EXIT, LINK_DOWN = EVENT_KIND.LINK_DOWN, CANCEL = EVENT_KIND.CANCEL },
    registry = {} }

function process.pid() return me().pid end

-- process.id(): Wippy's call-chain (frame) identifier. A Warren process
-- is one frame, so it is the pid.
function process.id() return me().pid end

-- The usual spawn is one C call (machine/spawn.rs), which answers nothing
-- where this Lua must act (bad arguments, outside a process, arguments
-- that are not scalars).
local function spawner(link, monitor)
    local spawn1 = M.spawn1
    return function(id, host, ...)
        local pid, kind, msg, retryable = spawn1(id, host, link, monitor, ...)
        if pid then return pid end
        if pid == false then return nil, mkerr(kind, msg, retryable) end
        check_str(id, "process.spawn: entry id", 2)
        check_str(host, "process.spawn: host", 2)
        pid, kind, msg, retryable = h_spawn(me().id, id, host, link, monitor, nil, ...)
        if pid then return pid end
        return nil, mkerr(kind, msg, retryable)
    end
end
process.spawn = spawner(false, false)
process.spawn_linked = spawner(true, false)
process.spawn_monitored = spawner(false, true)
process.spawn_linked_monitored = spawner(true, true)

-- The spawner builder (Wippy's SpawnBuilder): immutable, every method
-- returns a new builder. Its state is plain data in the builder's own
-- fields (read raw and checked when it spawns): context values the child
-- reads with `ctx`, a name registered for the child, messages sent to it.
do
-- Most values one with_message may queue (a forged count is not trusted).
local MAX_MESSAGE_ARGS = 4096
local SpawnerMethods = {}
local SpawnerMT = { __index = SpawnerMethods, __metatable = false, __warren = "spawner" }

-- A copy of table `t`'s string-keyed fields (read raw) over `base`.
local function merged(base, t, what)
    if type(t) ~= "table" then error(what .. ": expected a table, got " .. type(t), 3) end
    local out = {}
    if type(base) == "table" then
        for k, v in next, base do out[k] = v end
    end
    for k, v in next, t do
        if type(k) ~= "string" then error(what .. ": keys must be strings, got " .. describe(k), 3) end
        out[k] = v
    end
    return out
end

local function builder(from, field, value)
    local b = setmetatable({}, SpawnerMT)
    if from then
        for _, k in ipairs({ "_ctx", "_opts", "_name", "_msgs" }) do rawset(b, k, rawget(from, k)) end
    end
    if field then rawset(b, field, value) end
    return b
end

function process.with_context(values) return builder(nil, "_ctx", merged(nil, values, "process.with_context")) end
function process.with_options(opts) return builder(nil, "_opts", merged(nil, opts, "process.with_options")) end
function SpawnerMethods:with_context(values)
    return builder(self, "_ctx", merged(rawget(self, "_ctx"), values, "spawner:with_context"))
end
function SpawnerMethods:with_options(opts)
    return builder(self, "_opts", merged(rawget(self, "_opts"), opts, "spawner:with_options"))
end
function SpawnerMethods:with_name(name)
    check_str(name, "spawner:with_name: name", 2)
    return builder(self, "_name", name)
end
-- Security actors and scopes are Wippy's policy layer; Warren's reach
-- rules are per host, so these keep the builder as it is.
function SpawnerMethods:with_actor() return builder(self) end
function SpawnerMethods:with_scope() return builder(self) end
function SpawnerMethods:with_message(topic, ...)
    check_str(topic, "spawner:with_message: topic", 2)
    local msgs = {}
    local old = rawget(self, "_msgs")
    if type(old) == "table" then
        for i = 1, rawlen(old) do msgs[i] = rawget(old, i) end
    end
    msgs[#msgs + 1] = t_pack(topic, ...)
    return builder(self, "_msgs", msgs)
end

local function spawn_with(b, link, monitor, id, host, ...)
    if getmetatable(b) ~= false or raw_getmetatable(b) ~= SpawnerMT then
        error("expected a spawner (process.with_context or process.with_options)", 3)
    end
    check_str(id, "spawner:spawn: entry id", 3)
    check_str(host, "spawner:spawn: host", 3)
    local ctx = rawget(b, "_ctx")
    if type(ctx) ~= "table" then ctx = nil end
    local p = me()
    local pid, kind, msg, retryable = h_spawn(p.id, id, host, link, monitor, ctx, ...)
    if not pid then return nil, mkerr(kind, msg, retryable) end
    local name = rawget(b, "_name")
    if type(name) == "string" then
        -- Registered before the parent runs on; if the name is taken the
        -- child is stopped and the spawn fails.
        local ok, err = process.registry.register(name, pid)
        if not ok then
            H.terminate(p.id, pid)
            return nil, err
        end
    end
    local msgs = rawget(b, "_msgs")
    if type(msgs) == "table" then
        for i = 1, rawlen(msgs) do
            -- Copied raw into a kernel table: unpacking the builder's own
            -- would read it through any metamethods it was given.
            local m, args = rawget(msgs, i), {}
            local n = type(m) == "table" and rawget(m, "n")
            if math_type(n) == "integer" and n >= 1 and n <= MAX_MESSAGE_ARGS then
                for j = 1, n do args[j] = rawget(m, j) end
                process.send(pid, t_unpack(args, 1, n))
            end
        end
    end
    return pid
end
function SpawnerMethods:spawn(id, host, ...) return spawn_with(self, false, false, id, host, ...) end
function SpawnerMethods:spawn_linked(id, host, ...) return spawn_with(self, true, false, id, host, ...) end
function SpawnerMethods:spawn_monitored(id, host, ...) return spawn_with(self, false, true, id, host, ...) end
function SpawnerMethods:spawn_linked_monitored(id, host, ...)
    return spawn_with(self, true, true, id, host, ...)
end
end

function process.upgrade(id, ...)
    if id ~= nil then check_str(id, "process.upgrade: entry id", 2) end
    local p = me()
    if p.main.entry.func then
        return nil, mkerr("INVALID", "process.upgrade: a function call runs its own entry to the end")
    end
    local entry, kind, msg = H.entry(id or p.main.entry.id)
    if not entry then return nil, mkerr(kind, msg) end
    -- The entry comes from the host and waits in kernel state: the yielded
    -- token only says "now" (a forged one finds nothing pending).
    UPGRADES[p] = { entry, t_pack(...) }
    co_yield(UPGRADE)
    UPGRADES[p] = nil
end

function process.exec(id, host, ...)
    check_str(id, "process.exec: entry id", 2)
    check_str(host, "process.exec: host", 2)
    local p = me()
    if cannot_wait(current) then return nil, mkerr("INVALID", CANNOT_WAIT) end
    local child, kind, msg = h_spawn(p.id, id, host, false, true, nil, ...)
    if not child then return nil, mkerr(kind, msg) end
    p.exec = p.exec or {}
    p.exec[child] = current
    local ok, v = block(current, true)
    if ok then return v end
    return nil, v
end

-- A copy of a payload for a process in this VM: the same data model and
-- the same errors as the host's conversion. A table goes to the native copy
-- first (H.copy, copy.rs), which only ever copies or says "don't know";
-- this Lua copy decides the rest and builds every error.
local COPY_FAIL = function() end
local MAX_DEPTH = H.max_depth -- the host conversion's (convert.rs), shared with copy.rs
local copy_table
local function too_big()
    return COPY_FAIL, s_format("message payloads exceed max_message_bytes (%d)", MAX_MESSAGE_BYTES), ""
end

local function segment(k)
    local t = type(k)
    if t == "string" then
        if k:match("^[%a_][%w_]*$") then return "." .. k end
        return "[" .. s_format("%q", k) .. "]"
    end
    return "[" .. describe(k) .. "]"
end

local function copy_value(v, depth, open)
    local t = type(v)
    if t == "table" then return copy_table(v, depth, open) end
    if t == "string" then
        SEND.bytes = SEND.bytes + 5 + #v
    elseif t == "number" then
        SEND.bytes = SEND.bytes + 9
    elseif t == "boolean" or t == "nil" then
        SEND.bytes = SEND.bytes + 1
    else -- function, thread, userdata, channel: whatever `type` names
        return COPY_FAIL, t .. " cannot be sent", ""
    end
    -- every value, not only a string, may be the one that passes the limit
    if SEND.bytes > MAX_MESSAGE_BYTES then return too_big() end
    return v
end

copy_table = function(t, depth, open)
    if open[t] then return COPY_FAIL, "cycle: the table contains itself", "" end
    if depth >= MAX_DEPTH then
        return COPY_FAIL, "nesting deeper than " .. MAX_DEPTH .. " levels cannot be sent", ""
    end
    local mt = raw_getmetatable(t)
    local tag = mt and rawget(mt, "__warren")
    if tag then return COPY_FAIL, tag .. " cannot be sent", "" end
    open[t] = true
    SEND.bytes = SEND.bytes + 5
    if SEND.bytes > MAX_MESSAGE_BYTES then return too_big() end
    local out = {}
    -- Keys as wire_size counts them: a string 5 + its length, a boolean 1,
    -- a number 9, but 1..#t free when every key is one of them (an array),
    -- which is known at the end.
    local len, nindex, other = rawlen(t), 0, false
    for k, v in next, t do
        local kt = type(k)
        if kt == "string" then
            SEND.bytes, other = SEND.bytes + 5 + #k, true
        elseif kt == "boolean" then
            SEND.bytes, other = SEND.bytes + 1, true
        elseif kt == "number" then
            if math_type(k) == "integer" and k >= 1 and k <= len then
                nindex = nindex + 1
            else
                SEND.bytes, other = SEND.bytes + 9, true
            end
        else
            return COPY_FAIL, "a " .. kt .. " key cannot be sent", ""
        end
        if SEND.bytes > MAX_MESSAGE_BYTES then return too_big() end
        local c, reason, path = copy_value(v, depth + 1, open)
        if c == COPY_FAIL then return COPY_FAIL, reason, segment(k) .. path end
        out[k] = c
    end
    if other or nindex ~= len then
        SEND.bytes = SEND.bytes + 9 * nindex
        if SEND.bytes > MAX_MESSAGE_BYTES then return too_big() end
    end
    open[t] = nil
    if mt and rawequal(mt, ErrMT) then setmetatable(out, ErrMT) end -- an error stays one
    return out
end

-- Tables being copied (cycle detection); copying runs no user code, so one
-- set serves every copy, and a failed copy clears it.
local OPEN = {}
local function copy_failed(prefix, reason, path)
    for k in next, OPEN do OPEN[k] = nil end
    return COPY_FAIL, prefix .. path .. ": " .. reason
end

local function copy_one(v, prefix)
    if type(v) ~= "table" then
        local c, reason = copy_value(v, 0, OPEN)
        if c == COPY_FAIL then return copy_failed(prefix, reason, "") end
        return c
    end
    local c, bytes = H.copy(v, SEND.bytes, MAX_MESSAGE_BYTES, ErrMT)
    if c ~= nil then
        SEND.bytes = bytes
        return c
    end
    local c2, reason, path = copy_table(v, 0, OPEN)
    if c2 == COPY_FAIL then return copy_failed(prefix, reason, path) end
    return c2
end

local function copy_many(n, ...)
    local out = { ... }
    for i = 1, n do
        local c, reason = copy_one(out[i], "payload[" .. i .. "]")
        if c == COPY_FAIL then return COPY_FAIL, reason end
        out[i] = c
    end
    return out
end

local function send_local(from, target, topic, n, ...)
    if s_byte(topic, 1) == 64 then -- "@"
        return nil, mkerr("INVALID", s_format("topic %q is reserved: topics starting with '@' are for the runtime", topic))
    end
    SEND.bytes = 0
    if n == 1 then
        local c, reason = copy_one((...), "payload")
        if c == COPY_FAIL then return nil, mkerr("INVALID", reason) end
        local ok, kind, msg, retryable = H.admit(target.id)
        if not ok then return nil, mkerr(kind, msg, retryable) end
        SEND.owed = target
        on_msg1(target, topic, from.pid, c)
        SEND.owed = false
        return true
    end
    local out, reason = copy_many(n, ...)
    if out == COPY_FAIL then return nil, mkerr("INVALID", reason) end
    local ok, kind, msg, retryable = H.admit(target.id)
    if not ok then return nil, mkerr(kind, msg, retryable) end
    SEND.owed = target
    on_msg(target, topic, from.pid, t_unpack(out, 1, n))
    SEND.owed = false
    return true
end

function process.send(dest, topic, ...)
    -- One payload to a pid (the usual case) in one C call, which answers
    -- as H.send_plain for another VM's; what it leaves (a name, a reserved
    -- topic, a payload or a refusal to explain, bad arguments) goes the
    -- Lua way.
    local ok, kind, msg, retryable = M.send1(dest, topic, ...)
    if ok then return ok end -- ok_or_err, inlined
    if ok == false then return nil, mkerr(kind, msg, retryable) end
    if type(dest) ~= "string" then check_str(dest, "process.send: destination", 2) end
    if type(topic) ~= "string" then check_str(topic, "process.send: topic", 2) end
    local p = current
    p = p and p.p or me()
    local target = bypid[dest]
    if not target and s_byte(dest, 1) ~= 60 then -- a name: resolve it first, so every send to one process takes one path
        local pid = H.lookup(p.id, dest)
        target = pid and bypid[pid]
    end
    if target then
        return send_local(p, target, topic, select("#", ...), ...)
    end
    return ok_or_err(h_send(p.id, dest, topic, ...))
end

-- process.inbox() and process.events(): one C call for the usual case
-- (machine/mailbox.rs); this Lua when the process has messages waiting
-- for its first inbox, or outside a process (me() raises).
function process.inbox()
    local proxy = M.inbox1()
    if proxy then return proxy end
    local p = me()
    local s = p.inbox
    if s then return s.proxy end
    s = inbox_state(p) -- subscribes: what waited comes in, in order
    local q = p.pending
    if q then
        p.pending = nil
        while true do
            local m = qpop(q)
            if m == nil then break end
            deliver(s, m)
        end
    end
    return s.proxy
end
function process.events()
    return M.events1() or host_chan(me(), "events").proxy
end

-- `opts.message = true` delivers message objects (as the inbox does)
-- instead of bare payloads; the first listen of a topic decides.
function process.listen(topic, opts)
    check_str(topic, "process.listen: topic", 2)
    if s_sub(topic, 1, 1) == "@" then error("process.listen: topic " .. topic .. " is reserved", 2) end
    if opts ~= nil and type(opts) ~= "table" then error("process.listen: options must be a table", 2) end
    local p = me()
    p.listens = p.listens or {}
    local s = p.listens[topic]
    if not s then
        s = chan_state(0, true)
        s.mb = p
        s.msgs = opts ~= nil and rawget(opts, "message") == true or nil
        p.listens[topic] = s
        local q = p.pending -- messages of this topic waiting for a subscriber
        if q then
            local keep = qnew()
            while true do
                local m = qpop(q)
                if m == nil then break end
                if rawget(m, 1) ~= topic then
                    qpush(keep, m)
                elseif s.msgs then
                    deliver(s, m)
                elseif rawget(m, 3) == 1 then
                    deliver(s, rawget(m, 4))
                else
                    local list = {}
                    for i = 1, rawget(m, 3) do list[i] = rawget(m, 3 + i) end
                    deliver(s, list)
                end
            end
            p.pending = qlen(keep) > 0 and keep or nil
        end
    end
    return s.proxy
end

function process.unlisten(ch)
    local p = me()
    local s = state_of(ch, 2)
    if p.listens then
        for topic, ls in pairs(p.listens) do
            if ls == s then
                p.listens[topic] = nil
                -- What it still buffers no longer counts against the mailbox.
                for _ = 1, ls.buf and qlen(ls.buf) or 0 do note_taken(p) end
                ls.mb = nil
            end
        end
    end
    return true
end

local function pid_call(fn, name)
    return function(pid, ...)
        check_str(pid, name .. ": pid", 2)
        return ok_or_err(fn(me().id, pid, ...))
    end
end
process.link = pid_call(H.link, "process.link")
process.unlink = pid_call(H.unlink, "process.unlink")
process.monitor = pid_call(H.monitor, "process.monitor")
process.unmonitor = pid_call(H.unmonitor, "process.unmonitor")
process.cancel = pid_call(H.cancel, "process.cancel")
process.terminate = pid_call(H.terminate, "process.terminate")

-- An unknown option or a value of the wrong type is `false, err`, as in Wippy.
function process.set_options(opts)
    if type(opts) ~= "table" then error("process.set_options: expected a table", 2) end
    for k, v in next, opts do
        if k ~= "trap_links" then
            return false, mkerr("INVALID", "process.set_options: unknown option " .. describe(k))
        end
        if type(v) ~= "boolean" then
            return false, mkerr("INVALID", "process.set_options: trap_links must be a boolean")
        end
    end
    local trap = rawget(opts, "trap_links")
    if trap ~= nil then H.trap(me().id, trap) end
    return true
end

function process.get_options()
    return { trap_links = H.trap(me().id) }
end

do
-- Name scopes (Wippy's constants). Names are node-local: the cluster
-- scopes are refused until names span machines.
local SCOPES = { LOCAL = 0, EVENTUAL = 1, CONSISTENT = 2, STRONG = 3 }
for k, v in next, SCOPES do process.registry[k] = v end
local function local_scope(scope, what)
    if scope == nil or scope == SCOPES.LOCAL then return true end
    local name = "unknown"
    for k, v in next, SCOPES do if v == scope then name = k end end
    return nil, mkerr("INVALID", s_format(
        "%s: scope %s (%s) needs a cluster; names on Warren are node-local (process.registry.LOCAL)",
        what, describe(scope), name))
end

-- process record -> { name -> pid } of names it registered for other pids:
-- it may unregister those too, as long as they still name that pid.
local REGISTERED_FOR = setmetatable({}, { __mode = "k" })
H.kernel_tables(REGISTERED_FOR) -- as the tables named at the end

function process.registry.register(name, pid, scope)
    check_str(name, "process.registry.register: name", 2)
    if pid ~= nil then check_str(pid, "process.registry.register: pid", 2) end
    local okscope, err = local_scope(scope, "process.registry.register")
    if not okscope then return nil, err end
    local p = me()
    local ok, kind, msg, retryable = H.register(p.id, name, pid or p.pid)
    if not ok then return nil, mkerr(kind, msg, retryable) end
    if pid ~= nil and pid ~= p.pid then
        local mine = REGISTERED_FOR[p] or {}
        REGISTERED_FOR[p] = mine
        mine[name] = pid
    end
    return true
end

function process.registry.lookup(name)
    check_str(name, "process.registry.lookup: name", 2)
    local pid, kind, msg = H.lookup(me().id, name)
    if pid then return pid end
    if kind then return nil, mkerr(kind, msg) end
    return nil, mkerr("NOT_FOUND", "no process is registered as " .. s_format("%q", name))
end

-- true when released; false when `name` is neither held by this process
-- nor one it registered for another pid (and still naming that pid).
function process.registry.unregister(name, scope)
    check_str(name, "process.registry.unregister: name", 2)
    local okscope, err = local_scope(scope, "process.registry.unregister")
    if not okscope then return nil, err end
    local p = me()
    local mine = REGISTERED_FOR[p]
    local for_pid = mine and mine[name]
    if mine then mine[name] = nil end
    return H.unregister(p.id, name, for_pid)
end
end

---------------------------------------------------------------------------
-- coroutine: scheduler-aware resume/wrap, plus coroutine.spawn.
---------------------------------------------------------------------------
local function resume_step(co, ok, first, ...)
    if not ok and (first == MEMERR or H_doomed()) then error(first, 0) end
    if ok and (first == BLOCK or first == UPGRADE or first == PREEMPT)
        and co_status(co) == "suspended" then
        if first == PREEMPT and not co_isyieldable() then
            -- Resumed from code called from C: the preemption cannot be
            -- passed up from here, so carry on (the hook tries again).
            return resume_step(co, co_resume(co))
        end
        return resume_step(co, co_resume(co, co_yield(first, ...)))
    end
    return ok, first, ...
end

-- A resume made from code that cannot yield (a table.sort comparator, a
-- gsub callback): a wait inside could not be passed up, so while it runs
-- the kernel coroutine's `noyield` count says so and host calls refuse
-- to start (see `call`). Rare, so the pcall and pack cost nothing common.
local function resume_from_c(co, ...)
    local cr = current
    cr.noyield = (cr.noyield or 0) + 1
    local r = t_pack(pcall(resume_step, co, co_resume(co, ...)))
    local n = cr.noyield - 1
    cr.noyield = n > 0 and n or nil
    if not r[1] then error(r[2], 0) end
    return t_unpack(r, 2, r.n)
end

local function user_resume(co, ...)
    if M.is_kthread(co) then return false, "cannot resume a scheduler-managed coroutine" end
    if not co_isyieldable() then return resume_from_c(co, ...) end
    return resume_step(co, co_resume(co, ...))
end

local function wrap_result(ok, ...)
    if ok then return ... end
    error((...), 0)
end

local user_coroutine = {
    create = co_create,
    resume = user_resume,
    yield = co_yield,
    status = co_status,
    running = coroutine.running,
    isyieldable = coroutine.isyieldable,
    close = function(co)
        if M.is_kthread(co) then error("cannot close a scheduler-managed coroutine", 2) end
        return co_close(co)
    end,
    wrap = function(fn)
        local co = co_create(fn)
        local f = function(...)
            if not co_isyieldable() then return wrap_result(resume_from_c(co, ...)) end
            return wrap_result(resume_step(co, co_resume(co, ...)))
        end
        WRAPPED[f] = co -- measure() does not look into kernel closures
        return f
    end,
    spawn = function(fn, ...)
        if type(fn) ~= "function" then error("coroutine.spawn: expected a function", 2) end
        local p = me()
        if select("#", ...) <= 16 then
            local cr = new_cr(p, fn)
            M.prime(cr.th, ...)
            wake(cr, M.PRIMED)
        else
            wake(new_cr(p, trampoline), fn, t_pack(...))
        end
        return true
    end,
}

---------------------------------------------------------------------------
-- time
---------------------------------------------------------------------------
local time
do
local DurMethods, TimeMethods = {}, {}
local DurMT = { __index = DurMethods, __metatable = false }
local TimeMT = { __index = TimeMethods, __metatable = false }
local function dur(ns) return setmetatable({ ns = ns }, DurMT) end
local function tm(ns) return setmetatable({ ns = ns }, TimeMT) end
-- The nanoseconds of a duration or time value; raises for anything else
-- (read raw and checked: a forged `ns` could carry metamethods).
local function ns_of(v, level)
    local ns = type(v) == "table" and rawget(v, "ns")
    if math_type(ns) ~= "integer" then error("expected a duration or time value, got " .. type(v), level + 1) end
    return ns
end
DurMT.__tostring = function(d) return H.format_duration(ns_of(d, 2)) end
DurMT.__eq = function(a, b)
    local x, y = type(a) == "table" and rawget(a, "ns"), type(b) == "table" and rawget(b, "ns")
    return math_type(x) == "integer" and math_type(y) == "integer" and x == y
end
DurMT.__lt = function(a, b) return ns_of(a, 2) < ns_of(b, 2) end
DurMT.__le = function(a, b) return ns_of(a, 2) <= ns_of(b, 2) end
function DurMethods:nanoseconds() return ns_of(self, 2) end
function DurMethods:milliseconds() return ns_of(self, 2) // 1000000 end
function DurMethods:seconds() return ns_of(self, 2) / 1e9 end
function DurMethods:microseconds() return ns_of(self, 2) // 1000 end
function DurMethods:minutes() return ns_of(self, 2) / 6e10 end
function DurMethods:hours() return ns_of(self, 2) / 3.6e12 end

local function to_ns(d, level)
    local t = type(d)
    if t == "number" then
        if math_type(d) == "integer" then return d end
        if d ~= d or d >= 0x1p63 or d < -0x1p63 then error("invalid duration: " .. describe(d), level + 1) end
        return floor(d)
    elseif t == "string" then
        local ns, err = H.parse_duration(d)
        if not ns then error(err, level + 1) end
        return ns
    end
    local ns = t == "table" and rawget(d, "ns")
    if math_type(ns) == "integer" then return ns end
    error("expected a duration (\"150ms\", nanoseconds, or a duration value), got " .. t, level + 1)
end

TimeMT.__tostring = function(t) return H.format_time(ns_of(t, 2), "2006-01-02T15:04:05.999999999Z07:00") end
TimeMT.__eq = DurMT.__eq
TimeMT.__lt = DurMT.__lt
TimeMT.__le = DurMT.__le
function TimeMethods:unix() return ns_of(self, 2) // 1000000000 end
function TimeMethods:unix_nano() return ns_of(self, 2) end
function TimeMethods:before(other) return ns_of(self, 2) < ns_of(other, 2) end
function TimeMethods:after(other) return ns_of(self, 2) > ns_of(other, 2) end
function TimeMethods:equal(other) return ns_of(self, 2) == ns_of(other, 2) end
function TimeMethods:sub(other) return dur(ns_of(self, 2) - ns_of(other, 2)) end
function TimeMethods:add(d) return tm(ns_of(self, 2) + to_ns(d, 2)) end
function TimeMethods:format(layout)
    check_str(layout, "time:format: layout", 2)
    return H.format_time(ns_of(self, 2), layout)
end
function TimeMethods:format_rfc3339() return H.format_time(ns_of(self, 2), "2006-01-02T15:04:05Z07:00") end

local next_timer = 0
local function arm(p, ns, fire)
    next_timer = next_timer + 1
    local id = next_timer
    lazy_table(p, "timers")[id] = fire
    H.timer(p.id, id, ns < 0 and 0 or ns)
    return id
end

time = {
    RFC3339 = "2006-01-02T15:04:05Z07:00",
    RFC3339NANO = "2006-01-02T15:04:05.999999999Z07:00",
    RFC822 = "02 Jan 06 15:04 MST", RFC822Z = "02 Jan 06 15:04 -0700",
    RFC850 = "Monday, 02-Jan-06 15:04:05 MST", RFC1123 = "Mon, 02 Jan 2006 15:04:05 MST",
    RFC1123Z = "Mon, 02 Jan 2006 15:04:05 -0700", DATE_TIME = "2006-01-02 15:04:05",
    DATE_ONLY = "2006-01-02", TIME_ONLY = "15:04:05", KITCHEN = "3:04PM",
    NANOSECOND = 1, MICROSECOND = 1000, MILLISECOND = 1000000, SECOND = 1000000000,
    MINUTE = 60000000000, HOUR = 3600000000000,
    JANUARY = 1, FEBRUARY = 2, MARCH = 3, APRIL = 4, MAY = 5, JUNE = 6, JULY = 7,
    AUGUST = 8, SEPTEMBER = 9, OCTOBER = 10, NOVEMBER = 11, DECEMBER = 12,
    SUNDAY = 0, MONDAY = 1, TUESDAY = 2, WEDNESDAY = 3, THURSDAY = 4, FRIDAY = 5, SATURDAY = 6,
}

-- time.unix(sec, nsec): a time value from a Unix timestamp.
function time.unix(sec, nsec)
    if math_type(sec) ~= "integer" then error("time.unix: seconds must be an integer", 2) end
    if nsec ~= nil and math_type(nsec) ~= "integer" then error("time.unix: nanoseconds must be an integer", 2) end
    return tm(sec * 1000000000 + (nsec or 0))
end

function time.now() return tm(H.now()) end

-- Locations: fixed offsets east of UTC. Warren has no time-zone database:
-- localtz is UTC, and load_location knows only "UTC" and "Local".
-- A location's name and offset live in LOCS, keyed by its (empty) proxy:
-- time.utc is shared by every process, and a field rawset on it changes
-- nothing (it is also frozen below, with the time module).
local LOCS = setmetatable({}, { __mode = "k" })
H.kernel_tables(LOCS) -- as the tables named at the end
local LocMT = { __metatable = false, __warren = "location",
    __index = function(t, k)
        local l = LOCS[t]
        if k == "name" then return l and l[1] end
        if k == "offset" then return l and l[2] end
    end,
    __newindex = function() error("attempt to modify a location", 2) end,
    -- As frozen tables do: an iterator over its fields, never a table.
    __pairs = function(t)
        local l, i = LOCS[t] or {}, 0
        return function()
            i = i + 1
            if i == 1 then return "name", l[1] elseif i == 2 then return "offset", l[2] end
        end
    end }
local function location(name, offset)
    local t = setmetatable({}, LocMT)
    LOCS[t] = { name, offset }
    return t
end
time.utc = location("UTC", 0)
time.localtz = location("Local", 0)
function time.fixed_zone(name, offset)
    check_str(name, "time.fixed_zone: name", 2)
    if math_type(offset) ~= "integer" or offset < -86400 or offset > 86400 then
        error("time.fixed_zone: offset must be an integer number of seconds within a day", 2)
    end
    return location(name, offset)
end
function time.load_location(name)
    if name == "UTC" or name == "" then return time.utc end
    if name == "Local" then return time.localtz end
    return nil, mkerr("NOT_FOUND", s_format("time.load_location: unknown time zone %s (only UTC and Local)", describe(name)))
end
local function offset_of(loc, what)
    if loc == nil then return 0 end
    local l = LOCS[loc]
    if not l then error(what .. ": expected a location (time.utc, time.fixed_zone, ...)", 3) end
    return l[2]
end

-- time.parse(layout, value, loc?): Go's layouts; a value without a zone
-- is in `loc` (UTC by default).
function time.parse(layout, value, loc)
    check_str(layout, "time.parse: layout", 2)
    check_str(value, "time.parse: value", 2)
    local ns, err = H.parse_time(layout, value, offset_of(loc, "time.parse"))
    if not ns then return nil, mkerr("INVALID", err) end
    return tm(ns)
end

-- time.date(year, month, day, hour, min, sec, nsec, loc?), normalised as
-- Go's time.Date is (month 13 is January of the next year).
function time.date(y, mo, d, h, mi, s, ns, loc)
    local args = { y, mo, d, h or 0, mi or 0, s or 0, ns or 0 }
    for i = 1, 7 do
        if math_type(args[i]) ~= "integer" then error("time.date: argument " .. i .. " must be an integer", 2) end
    end
    local t, err = H.date(args[1], args[2], args[3], args[4], args[5], args[6], args[7], offset_of(loc, "time.date"))
    if not t then error("time.date: " .. err, 2) end
    return tm(t)
end
now_value = time.now
-- What the machine needs of what the kernel made since it was built (see
-- the time section for TimeMT). start: the machine starts a process with
-- it when the host's entry table for its program is made (H.entries) and
-- it has no context values.
M.bind(ErrMT, MsgMT, SEND, procs, mkerr, PayloadMT, payload_list, start, H.entries, TimeMT, bypid)
function time.parse_duration(s)
    check_str(s, "time.parse_duration: argument", 2)
    -- Durations are short; a huge one would be quoted whole in the error.
    if #s > 256 then
        return nil, mkerr("INVALID", s_format("time.parse_duration: %d bytes is longer than 256", #s))
    end
    local ns, err = H.parse_duration(s)
    if not ns then return nil, mkerr("INVALID", err) end
    return dur(ns)
end

-- A zero or negative duration for after, timer and ticker is `nil, err`
-- (INVALID), as in Wippy.
local function nonpositive(what, ns)
    return nil, mkerr("INVALID", s_format("%s: the duration must be positive, got %dns", what, ns))
end

function time.after(d)
    local ns = to_ns(d, 2)
    if ns <= 0 then return nonpositive("time.after", ns) end
    local p = me()
    local s = chan_state(1, true)
    arm(p, ns, function() deliver(s, tm(H.now())) end)
    return s.proxy
end

function time.sleep(d)
    local ns = to_ns(d, 2)
    local p = me()
    local cr = current
    if cannot_wait(cr) then error(CANNOT_WAIT, 2) end
    arm(p, ns, function() wake(cr) end)
    block(cr, true)
end

local TimerMethods = {}
local TimerMT = { __index = TimerMethods, __metatable = false, __warren = "timer" }
local function timer_state(t, level)
    local st = TIMERS[t]
    if not st then error("expected a timer, got " .. type(t), level + 1) end
    return st
end

function time.timer(d)
    local ns = to_ns(d, 2)
    if ns <= 0 then return nonpositive("time.timer", ns) end
    local p = me()
    local s = chan_state(1, true)
    local t = setmetatable({}, TimerMT)
    local st = { p = p, s = s }
    TIMERS[t] = st
    local function fire() st.id = nil; deliver(s, tm(H.now())) end
    st.fire = fire
    st.id = arm(p, ns, fire)
    return t
end
function TimerMethods:channel() return timer_state(self, 2).s.proxy end
TimerMethods.response = TimerMethods.channel -- Wippy's name
function TimerMethods:stop()
    local st = timer_state(self, 2)
    local timers = st.p.timers
    local pending = st.id ~= nil and timers and timers[st.id] ~= nil or false
    if st.id and timers then timers[st.id] = nil end
    st.id = nil
    return pending
end
function TimerMethods:reset(d)
    local st = timer_state(self, 2)
    local ns = to_ns(d, 2)
    local pending = TimerMethods.stop(self)
    st.id = arm(st.p, ns, st.fire)
    return pending
end

function time.ticker(d)
    local ns = to_ns(d, 2)
    if ns <= 0 then return nonpositive("time.ticker", ns) end
    local p = me()
    local s = chan_state(1, true)
    local t = setmetatable({}, TimerMT)
    local st = { p = p, s = s }
    TIMERS[t] = st
    local function fire()
        if not s.buf or qlen(s.buf) == 0 then deliver(s, tm(H.now())) end
        st.id = arm(p, ns, st.fire)
    end
    st.fire = fire
    st.id = arm(p, ns, fire)
    return t
end
end

---------------------------------------------------------------------------
-- Modules and the sandbox.
---------------------------------------------------------------------------
local FROZEN = setmetatable({}, { __mode = "k" })
FROZEN[time.utc], FROZEN[time.localtz] = true, true

local function freeze(real, name)
    for k, v in pairs(real) do
        if type(v) == "table" and not FROZEN[v] then real[k] = freeze(v, name .. "." .. k) end
    end
    local proxy = setmetatable({}, {
        __index = real,
        __newindex = function(_, k)
            error(s_format("attempt to modify read-only table '%s' (key %s)", name, describe(k)), 2)
        end,
        -- An iterator that hands out keys and values, never `real` itself.
        __pairs = function()
            local k
            return function()
                local v
                k, v = next(real, k)
                return k, v
            end
        end,
        __len = function() return #real end,
        __metatable = false,
    })
    FROZEN[proxy] = true
    return proxy
end

local json = freeze({ encode = function(v)
    local s, err = H.json_encode(v)
    if s then return s end
    return nil, mkerr("INVALID", err)
end, decode = function(s)
    check_str(s, "json.decode: argument", 2)
    local v, err = H.json_decode(s)
    if err then return nil, mkerr("INVALID", err) end
    return v
end }, "json")

-- services: the supervisor's view, for processes of applications with
-- process.service entries. Commands are asynchronous: the state changes
-- shortly after, visible through status/list and in the log.
local services = {}
function services.list()
    local list = H.services_list(me().id)
    if not list then return nil, mkerr("UNAVAILABLE", "no services: the application runs without a supervisor") end
    return list
end
function services.status(id)
    check_str(id, "services.status: id", 2)
    local list, err = services.list()
    if not list then return nil, err end
    for _, s in ipairs(list) do
        if s.id == id then return s end
    end
    return nil, mkerr("NOT_FOUND", s_format("no service %q", id))
end
for _, name in ipairs({ "start", "stop", "restart" }) do
    services[name] = function(id)
        check_str(id, "services." .. name .. ": id", 2)
        return ok_or_err(H.services_command(me().id, id, name))
    end
end

-- Wippy's modules and globals beyond the process model: io, registry,
-- ctx, payload, subscribe/unsubscribe. Kept in EXTRA (one local).
local EXTRA = {}
do
local s_match = string.match
-- io: the terminal, for processes of a terminal.host (H.terminal).
do
local io_mod = {}
local function texts(sep, ...)
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do parts[i] = user_tostring((select(i, ...))) end
    return t_concat(parts, sep)
end
local function io_out(to_stderr, text)
    local ok, kind, msg = H.io_write(to_stderr, text)
    if ok then return true end
    return nil, mkerr(kind, msg)
end
-- Refused before any argument is turned into text.
local TERMINAL = H.terminal
local function no_terminal()
    return nil, mkerr("UNAVAILABLE", "no terminal: io works only in processes of a terminal.host")
end
function io_mod.write(...)
    if not TERMINAL then return no_terminal() end
    return io_out(false, texts("", ...))
end
function io_mod.print(...)
    if not TERMINAL then return no_terminal() end
    return io_out(false, texts("\t", ...) .. "\n")
end
function io_mod.eprint(...)
    if not TERMINAL then return no_terminal() end
    return io_out(true, texts("\t", ...) .. "\n")
end
function io_mod.flush()
    local ok, kind, msg = H.io_flush()
    if ok then return true end
    return nil, mkerr(kind, msg)
end
function io_mod.args()
    if not TERMINAL then return no_terminal() end
    return H.io_args()
end
function io_mod.raw()
    return nil, mkerr("UNAVAILABLE", "io.raw: raw terminal mode is not supported")
end
-- A read blocks this coroutine (as waiting on a host-fed channel does)
-- until the reader thread has an answer; one read per process at a time.
local function io_read(line, n)
    local p = me()
    if p.io_wait then return nil, mkerr("CONFLICT", "io: another read of this process is pending") end
    if n ~= nil and math_type(n) ~= "integer" then n = 0 end
    if cannot_wait(current) then return nil, mkerr("INVALID", CANNOT_WAIT) end
    local ok, kind, msg = H.io_request(p.id, line, n or 0)
    if not ok then return nil, mkerr(kind, msg) end
    local cr = current
    while true do
        p.io_wait = cr
        block(cr, true)
        local text, err = H.io_take(p.id)
        if text ~= false then
            if err then return nil, mkerr("INTERNAL", "io: " .. err) end
            if text == nil then return nil, mkerr("NOT_FOUND", "io: end of input") end
            return text
        end
    end
end
function io_mod.readline() return io_read(true) end
function io_mod.read(n) return io_read(false, n) end
EXTRA.io = io_mod
end

-- registry: the application's entries, read-only (Wippy's read calls;
-- changesets are refused).
do
local registry = {}
local function split_id(id)
    local ns, name = s_match(id, "^(.*):([^:]*)$")
    return ns or "", name or id
end
-- Does entry `e` match filter key `k` = value `v`? ".kind", ".ns", ".name"
-- and ".id" (or "kind", "ns", "name", "id") look at the entry,
-- "meta.x" and other keys at its meta.
-- Entries and lists are read raw: a snapshot's entries are the process's
-- own tables, and it may have given them metatables.
local function matches(e, k, v)
    local field = s_match(k, "^%.(.*)$") or k
    -- rawequal: a filter value's __eq is never run.
    if field == "kind" or field == "id" then return rawequal(rawget(e, field), v) end
    local id = rawget(e, "id")
    local ns, name = split_id(type(id) == "string" and id or "")
    if field == "ns" or field == "namespace" then return rawequal(ns, v) end
    if field == "name" then return rawequal(name, v) end
    local meta = rawget(e, "meta")
    if type(meta) ~= "table" then return false end
    if k == "meta" and type(v) == "table" then
        -- { meta = { type = "x" } }: every field must match.
        for mk, mv in next, v do
            if not rawequal(rawget(meta, mk), mv) then return false end
        end
        return true
    end
    local key = s_match(k, "^meta%.(.*)$") or k
    return rawequal(rawget(meta, key), v)
end
local function find_in(list, filter)
    if filter == nil then return list end
    if type(filter) ~= "table" then return nil, mkerr("INVALID", "registry.find: the filter must be a table") end
    local out = {}
    for i = 1, rawlen(list) do
        local e, ok = rawget(list, i), true
        if type(e) ~= "table" then ok = false end
        for k, v in next, filter do
            if not ok or type(k) ~= "string" or not matches(e, k, v) then ok = false; break end
        end
        if ok then out[#out + 1] = e end
    end
    return out
end
local function get_in(list, id)
    check_str(id, "registry.get: id", 3)
    for i = 1, rawlen(list) do
        local e = rawget(list, i)
        if type(e) == "table" and rawequal(rawget(e, "id"), id) then return e end
    end
    return nil, mkerr("NOT_FOUND", s_format("registry: no entry %q", id))
end
local VersionMethods = {}
local VersionMT = { __index = VersionMethods, __metatable = false }
function VersionMethods.id() return 1 end
function VersionMethods.string() return "1" end
function VersionMethods.previous() return nil end
function VersionMethods.next() return nil end
local version = setmetatable({}, VersionMT)
local function read_only()
    return nil, mkerr("PERMISSION_DENIED", "registry: entries are fixed by the application's configuration (read-only)")
end
local ChangesMethods = { create = function(self) return self end, update = function(self) return self end,
    delete = function(self) return self end, ops = function() return {} end, apply = read_only }
local ChangesMT = { __index = ChangesMethods, __metatable = false }
local SnapMethods = {}
local SnapMT = { __index = SnapMethods, __metatable = false }
-- A snapshot's entries are kept in HELD (so a forged snapshot reaches none,
-- and the process is charged for them).
local function snap_list(s)
    local list = raw_getmetatable(s) == SnapMT and HELD[s]
    if not list then error("expected a registry snapshot", 3) end
    return list
end
function SnapMethods:entries() return snap_list(self) end
function SnapMethods:get(id) return get_in(snap_list(self), id) end
function SnapMethods:find(filter) return find_in(snap_list(self), filter) end
function SnapMethods:namespace(ns) return find_in(snap_list(self), { [".ns"] = ns }) end
function SnapMethods.version() return version end
function SnapMethods.changes() return setmetatable({}, ChangesMT) end
function registry.get(id) return get_in(H.registry_entries(), id) end
function registry.find(filter) return find_in(H.registry_entries(), filter) end
function registry.parse_id(id)
    check_str(id, "registry.parse_id: id", 2)
    local ns, name = split_id(id)
    return { ns = ns, name = name }
end
function registry.snapshot()
    local snap = setmetatable({}, SnapMT)
    HELD[snap] = H.registry_entries()
    return snap
end
function registry.snapshot_at(v)
    if v == 1 then return registry.snapshot() end
    return nil, mkerr("NOT_FOUND", "registry: only version 1 exists")
end
function registry.current_version() return version end
function registry.versions() return { version } end
registry.apply_version = read_only
function registry.build_delta() return nil, mkerr("INVALID", "registry.build_delta is not supported") end
EXTRA.registry = registry
end

-- events: the event bus. A subscription is a table holding its channel
-- and id (plain data: it can only ever name its own process's
-- subscriptions, which the host checks).
do
local events = {}
local SubMethods = {}
local SubMT = { __index = SubMethods, __metatable = false, __warren = "subscription" }
function events.subscribe(system, kind)
    check_str(system, "events.subscribe: system", 2)
    if kind ~= nil then check_str(kind, "events.subscribe: kind", 2) end
    local p = me()
    local id, k, m = H.bus_subscribe(p.id, system, kind)
    if not id then return nil, mkerr(k, m) end
    local s = chan_state(0, true)
    s.mb = p
    local bus = p.bus or {}
    p.bus = bus
    bus[id] = s
    return setmetatable({ _ch = s.proxy, _id = id }, SubMT)
end
function SubMethods:channel() return rawget(self, "_ch") end
function SubMethods:close()
    local id, p = rawget(self, "_id"), me()
    local s = p.bus and p.bus[id]
    if s then
        p.bus[id] = nil
        H.bus_unsubscribe(p.id, id)
        close_state(s)
    end
    return true
end
function events.send(system, kind, path, data)
    check_str(system, "events.send: system", 2)
    check_str(kind, "events.send: kind", 2)
    check_str(path, "events.send: path", 2)
    local ok, k, m = H.bus_send(me().id, system, kind, path, data)
    if ok then return true end
    return nil, mkerr(k, m)
end
EXTRA.events = events
end

-- logger: structured lines through the host's log (tracing), tagged with
-- the pid, the logger's name and `entry-id:line`. The module value is the
-- root logger; `:with(fields)` and `:named(name)` make children. Fields are
-- read raw; values are strings, numbers and booleans as such, error
-- objects as their text, tables as JSON; other keys are dropped. A line is
-- cut at 16 KiB and takes at most 64 fields.
do
local LOGGERS = setmetatable({}, { __mode = "k" }) -- logger -> { name, fields }
H.kernel_tables(LOGGERS) -- as the tables named at the end
local LoggerMethods = {}
local LoggerMT = { __index = LoggerMethods, __metatable = false, __warren = "logger" }
local MAX_FIELDS, MAX_LINE = 64, 16384
local function make(name, fields)
    local l = setmetatable({}, LoggerMT)
    LOGGERS[l] = { name, fields }
    return l
end
local logger = make("", {})
EXTRA.logger = logger
-- Copies the string-keyed fields of `t` (raw) over `base`.
local function merge(base, t)
    local out, n = {}, 0
    for k, v in next, base do out[k] = v; n = n + 1 end
    if type(t) == "table" then
        for k, v in next, t do
            if type(k) == "string" and n < MAX_FIELDS then
                if out[k] == nil then n = n + 1 end
                out[k] = v
            end
        end
    end
    return out
end
local function field_text(v)
    local t = type(v)
    if t == "string" then return v end
    if t == "number" or t == "boolean" then return tostring(v) end
    if is_err(v) then return err_text(v) end
    if t == "table" then
        local s = H.json_encode(v)
        return s or "(table)"
    end
    return nil
end
local function emit(level, self, msg, fields)
    -- `logger.info(msg, fields)` without the colon works too.
    local l = LOGGERS[self]
    if not l then self, msg, fields, l = logger, self, msg, LOGGERS[logger] end
    local all = merge(l[2], fields)
    local keys = {}
    for k in next, all do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = { type(msg) == "string" and msg or describe(msg) }
    for i = 1, #keys do
        local text = field_text(all[keys[i]])
        if text then parts[#parts + 1] = keys[i] .. "=" .. text end
    end
    local line = t_concat(parts, " ")
    if #line > MAX_LINE then line = s_sub(line, 1, MAX_LINE) .. "..." end
    local p = me()
    local info = dbg.getinfo(2, "l") -- the caller (the method tail-calls emit)
    local location = p.main.entry.id .. ":" .. tostring(info and info.currentline or 0)
    H.log_named(p.id, level, line, l[1], location)
end
for _, level in ipairs({ "debug", "info", "warn", "error" }) do
    LoggerMethods[level] = function(self, msg, fields) return emit(level, self, msg, fields) end
end
function LoggerMethods:with(fields)
    local l = LOGGERS[self]
    if not l then error("logger:with: call it with ':' on a logger", 2) end
    if type(fields) ~= "table" then error("logger:with: fields must be a table", 2) end
    return make(l[1], merge(l[2], fields))
end
function LoggerMethods:named(name)
    local l = LOGGERS[self]
    if not l then error("logger:named: call it with ':' on a logger", 2) end
    if type(name) ~= "string" or name == "" then
        return nil, mkerr("INVALID", "logger:named: the name must be a non-empty string")
    end
    return make(l[1] == "" and name or (l[1] .. "." .. name), l[2])
end
end

-- ctx: the values the process was spawned with (process.with_context).
local ctx = {}
function ctx.get(key)
    if type(key) ~= "string" or key == "" then return nil, mkerr("INVALID", "ctx.get: key must be a non-empty string") end
    local values = me().ctx
    local v = type(values) == "table" and values[key] or nil
    if v == nil then
        if type(values) == "table" and values[key] == false then return false end
        return nil, mkerr("NOT_FOUND", s_format("ctx: no value %q", key))
    end
    return v
end
function ctx.all()
    local out, values = {}, me().ctx
    if type(values) == "table" then
        for k, v in next, values do out[k] = v end
    end
    return out
end
EXTRA.ctx = ctx

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
    if s_sub(topic, 1, 1) == "@" then error("subscribe: topic " .. topic .. " is reserved", 2) end
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
local KAPI = { await = await, call = call, call_as = M.call_as, entry_id = entry_id, mkerr = mkerr, is_err = is_err, describe = describe,
    raw_getmetatable = raw_getmetatable, freeze = freeze, watch = watch, forget = forget, start_watched = start_watched,
    new_channel = new_channel, deliver = deliver, close_channel = close_state, payload = EXTRA.payload.new }
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

local MODULES = { json = json, time = freeze(time, "time"), services = freeze(services, "services"),
    io = freeze(EXTRA.io, "io"), registry = freeze(EXTRA.registry, "registry"), ctx = freeze(EXTRA.ctx, "ctx"),
    events = freeze(EXTRA.events, "events"), logger = EXTRA.logger }
-- base64, hash, uuid, crypto: host functions (data/ in the Lua front-end).
for name, t in next, H.data_modules do MODULES[name] = freeze(t, name) end
for name, t in next, EXTRA.io_modules do MODULES[name] = freeze(t, name) end

-- Libraries (library.lua entries a process imports) run in the importing
-- process, at most once each, with an environment of their own over the
-- process's globals whose `require` resolves their own modules and
-- imports. These frames hold only the process's own state (p.loaded), so
-- preempt.rs lets a preemption through them.
local LOADING = function() end
local require_in
local function require_from(p, lib)
    return function(name) return require_in(p, lib, name, 2) end
end
local function load_library(p, lib, level)
    local loaded = p.loaded
    if not loaded then
        loaded = {}
        p.loaded = loaded
    end
    local v = loaded[lib]
    if v == LOADING then
        error(mkerr("INVALID", s_format("library %s is being loaded (an import cycle, or it failed before)", lib.id)), level + 1)
    end
    if v ~= nil then return v end
    loaded[lib] = LOADING
    local env = setmetatable({ require = require_from(p, lib) }, { __index = p.env, __metatable = false })
    local r = lib.chunk(env, lib.types)
    if r == nil then r = true end
    loaded[lib] = r
    return r
end
function require_in(p, entry, name, level)
    check_str(name, "require: module name", level + 1)
    local lib = entry.imports[name]
    if lib then return load_library(p, lib, level + 1) end
    local m = MODULES[name]
    if m and entry.modules[name] then return m end
    if not m then
        error(mkerr("NOT_FOUND", s_format("module %q does not exist (entry %s)", name, entry.id)), level + 1)
    end
    error(mkerr("PERMISSION_DENIED",
        s_format("module %q is not allowed for entry %s (add it to the entry's modules list)", name, entry.id)), level + 1)
end
local function require_module(name)
    local p = me()
    return require_in(p, p.main.entry, name, 2)
end

local function safe_rawset(t, k, v)
    if FROZEN[t] then error("attempt to modify a read-only table", 2) end
    return rawset(t, k, v)
end

local function safe_setmetatable(t, mt)
    if FROZEN[t] then error("cannot change a protected metatable", 2) end
    if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
        error("setmetatable: __gc metamethods are not available to processes", 2)
    end
    return setmetatable(t, mt)
end

local function safe_load(chunk, name, mode, env)
    if mode ~= nil and mode ~= "t" then
        return nil, "load: only text chunks can be loaded (mode must be \"t\")"
    end
    if env == nil then env = me().env end
    if type(chunk) == "string" and s_byte(chunk, 1) == 27 then
        return nil, "load: binary chunks are not allowed"
    end
    -- Lua names a text chunk by a copy of its whole source (one C copy that
    -- cannot be interrupted); its first 256 bytes name it the same way.
    if name == nil and type(chunk) == "string" and #chunk > 256 then name = s_sub(chunk, 1, 256) end
    local types
    if type(chunk) == "string" then
        -- Wippy's typed dialect: type syntax erased, lines kept.
        local text, t, err = H.translate(chunk)
        if not text then return nil, s_format("[string %q]:%s", describe(name or s_sub(chunk, 1, 40)), err) end
        chunk, types = text, t
    end
    local f, err = load(chunk, name, "t", env)
    -- A chunk that reads types as values was wrapped to receive them.
    if f and types then f = f()(types) end
    return f, err
end

-- "count" is the process's own size in KiB: the VM's would tell it about
-- its neighbours.
local function safe_collectgarbage(opt)
    if opt == "count" then return H.memory(me().id) end
    error("collectgarbage: only \"count\" is available to processes", 2)
end

local function lprint(...)
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do parts[i] = user_tostring((select(i, ...))) end
    H_log(me().id, "info", t_concat(parts, "\t"))
end

-- A memory-limit error, or the error that ends a process past its CPU
-- budget, passes through every protected call: the process ends (quota.rs).
local function no_oom(ok, ...)
    if not ok then
        if is_memerr((...)) then error(MEMERR, 0) end
        if H_doomed() then error((...), 0) end
    end
    return ok, ...
end
local function safe_pcall(f, ...) return no_oom(pcall(f, ...)) end
local function safe_xpcall(f, handler, ...) return no_oom(xpcall(f, handler, ...)) end

local real_string = string
real_string.dump = nil
local os_subset, user_math
do
    -- Longest os.date format: each conversion is a strftime call inside one
    -- C call, so a huge format would hold the worker.
    local MAX_DATE_FORMAT = 1024
    local os_date, os_time, H_clock = os.date, os.time, H.clock
    local TIME_FIELDS = { "year", "month", "day", "hour", "min", "sec", "isdst" }
    os_subset = {
        -- The fields are read raw here: os.time would run their __index
        -- from C, where a loop cannot be preempted.
        time = function(t)
            if type(t) ~= "table" then return os_time(t) end
            local plain = {}
            for i = 1, #TIME_FIELDS do
                local k = TIME_FIELDS[i]
                plain[k] = rawget(t, k)
            end
            return os_time(plain)
        end,
        date = function(fmt, t)
            if type(fmt) == "string" and #fmt > MAX_DATE_FORMAT then
                error("os.date: format longer than " .. MAX_DATE_FORMAT .. " bytes", 2)
            end
            return os_date(fmt, t)
        end,
        -- The process's own run time, not the whole OS process's CPU time
        -- (which would tell it how busy other tenants are).
        clock = function() return H_clock(me().id) end,
        difftime = os.difftime,
    }

    -- math with a generator per process (a shared one could be seeded by
    -- one process to predict what another draws).
    local H_random, H_randomseed = H.random, H.randomseed
    user_math = {}
    for k, v in next, math do user_math[k] = v end
    user_math.random = function(...) return H_random(me().id, ...) end
    user_math.randomseed = function(...) return H_randomseed(me().id, ...) end
end

local GLOBALS = {
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = safe_pcall,
    select = select, tonumber = tonumber, tostring = tostring, type = type, xpcall = safe_xpcall,
    rawequal = rawequal, rawget = rawget, rawlen = rawlen, rawset = safe_rawset,
    setmetatable = safe_setmetatable, getmetatable = getmetatable, load = safe_load,
    collectgarbage = safe_collectgarbage, print = lprint, require = require_module,
    _VERSION = _VERSION,
    string = freeze(real_string, "string"),
    table = freeze(table, "table"),
    math = freeze(user_math, "math"),
    utf8 = freeze(utf8, "utf8"),
    os = freeze(os_subset, "os"),
    coroutine = freeze(user_coroutine, "coroutine"),
    process = freeze(process, "process"),
    channel = freeze(channel, "channel"),
    errors = freeze(errors, "errors"),
    payload = freeze(EXTRA.payload, "payload"),
    subscribe = EXTRA.subscribe, unsubscribe = EXTRA.unsubscribe, unpack = table.unpack,
}
ENV_MT = { __index = GLOBALS, __metatable = false }
-- The machine starts a process as `start` does (machine/start.rs) once it
-- has these.
M.bind_start(ENV_MT, proc_main, M.value_of)

-- Primitive type calls (Wippy's typed Lua): `string(v)`, `integer(v)`,
-- `number(v)` and `boolean(v)` return `v` when it is of that type and raise
-- "expected <type>, got <type>" at the caller otherwise; they validate,
-- never convert. `string` stays the string library.
do
    local function validator(name, ok)
        return function(_, v)
            if ok(v) then return v end
            error(s_format("expected %s, got %s", name, math_type(v) == "float" and name == "integer"
                and "number" or type(v)), 2)
        end
    end
    raw_getmetatable(GLOBALS.string).__call = validator("string", function(v) return type(v) == "string" end)
    for name, ok in next, {
        integer = function(v) return math_type(v) == "integer" end,
        number = function(v) return type(v) == "number" end,
        boolean = function(v) return type(v) == "boolean" end,
    } do
        local t = freeze({}, name)
        raw_getmetatable(t).__call = validator(name, ok)
        GLOBALS[name] = t
    end
end

-- The string metatable is shared by the whole VM: lock it.
local smt = getmetatable("")
smt.__index = real_string
smt.__metatable = false

-- What every process shares is nobody's memory.
do
    local todo = { GLOBALS, ENV_MT, smt, _ENV, MODULES, EXTRA }
    while #todo > 0 do
        local t = table.remove(todo)
        if not NOT_OWNED[t] then
            NOT_OWNED[t] = true
            for k, v in next, t do
                if type(k) == "table" then todo[#todo + 1] = k end
                if type(v) == "table" then todo[#todo + 1] = v end
            end
            local mt = raw_getmetatable(t)
            if mt then todo[#todo + 1] = mt end
        end
    end
end

-- Entry records are built by the host on first start (see lib.rs).
-- `imports` maps aliases to library records made here too; records are
-- shared by every process of the VM, so nobody's memory.
-- `types` is the chunk's read-only `__warren_types` (nil when it reads no
-- type as a value).
local function new_entry(id, chunk, method, modules, imports, types)
    local set = {}
    for i = 1, #modules do set[modules[i]] = true end
    local e = { id = id, chunk = chunk, method = method, modules = set, imports = imports or {}, types = types }
    NOT_OWNED[e], NOT_OWNED[chunk], NOT_OWNED[e.modules], NOT_OWNED[e.imports] = true, true, true, true
    if types then NOT_OWNED[types] = true end
    return e
end

-- The kernel's tables that hold an entry per process or object of the
-- whole VM: their growth, which happens inside whichever process adds the
-- entry that does not fit, is charged to no process (gctime.rs).
H.kernel_tables(RQ, TAKEN, UPGRADES, CASE, TIMERS, WRAPPED, HELD,
    ERRSET, procs, bypid, NOT_OWNED)

return { run = run, new_entry = new_entry, error_mt = ErrMT, module_names = function()
    local names = {}
    for k in pairs(MODULES) do names[#names + 1] = k end
    return names
end }
