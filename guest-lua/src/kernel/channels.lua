-- Warren's Lua kernel: the machinery in C, channels, select, and a process's own text for a value.
-- One chunk with the other parts (see kernel.rs): it uses what earlier parts declare.

---------------------------------------------------------------------------
-- The machinery in C (machine/ in the crate): the run queue (parallel
-- arrays, no allocation per wake-up) and channels' waiters, receive, send
-- and host-fed delivery, over the tables made here.
---------------------------------------------------------------------------
local RQ = {} -- the run queue: four slots per entry (machine/runq.rs)

local current -- the coroutine record being run

-- The message a process is sending within this VM: the `bytes` it counts
-- as so far (the host's wire_size rules). The receiver the host counted
-- it for (H.admit) is marked owed (M.owe, the step's mark) until it is
-- delivered: a delivery that fails on the sender's memory limit leaves
-- the mark, and finish_one reports that message as taken from the
-- receiver's mailbox (M.take_owed), so the host's count of it stays true.
local SEND = { bytes = 0, slots = 0 }

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
-- n (default 1) messages taken out of p's mailbox: counted to the core at
-- once, as the machine counts its takes (TAKEN[p] holds counts only in a
-- VM without a host, the machine's own tests).
local function note_taken(p, n)
    H.consumed(p.id, n or 1)
end
-- resume_next(limit, left) resumes wake-ups in batches, each between its
-- process's accounting (step.rs); it returns how many it took, what is
-- left of the batch, and what it leaves to finish_one.
local resume_next, drain = M.resume_next, M.drain

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
-- registry snapshot's entries, a logger's name and fields), measured as
-- the process's.
local HELD = setmetatable({}, { __mode = "k" })

-- What a case stands for: CASE[case] = { s, send, v } (the channel's
-- state, whether it sends, the value), read by the select in C. The case
-- methods are C too (machine/select.rs): a receive case is made once per
-- channel and handed out again (`s.rcase`), so a service's select loop
-- makes no case tables; CASE is weak-keyed, so a channel, its state and
-- its case are collected together.
ChanMethods.case_receive, ChanMethods.case_send = M.case_receive, M.case_send

local channel = {}

function channel.new(n)
    if n ~= nil and (math_type(n) ~= "integer" or n < 0) then
        error("channel.new: capacity must be a non-negative integer, got " .. describe_cut(n), 2)
    end
    return chan_state(n or 0, false).proxy
end

-- `channel.select(cases, nonblocking)` (`nonblocking` true is Wippy's
-- non-blocking form, as `default = true`) is in C (machine/select.rs):
-- each case tried in order, else a waiter `{ cr, sel, v }` per case,
-- all sharing `sel = { done }`, and one wait.
-- M.bind_select(CASE, CaseMT, resume_tick) is made with the tickers
-- (time.lua).
channel.select = M.select

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

