-- Warren's Lua kernel: items from the host: messages, events, timers, results.
-- One chunk with the other parts (see kernel.rs): it uses what earlier parts declare.

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

-- A CANCEL from a sender whose earlier CANCEL still waits in the events
-- queue is dropped: cancelling is idempotent, and a loop of cancels parked
-- one event each in the target's memory, ending it for memory its sender
-- chose. `p.cancels[from]` is the waiting event (held weakly: once taken
-- and dropped it is not kept) and `p.cancel_at[from]` its slot; a queue's
-- slots move only when it is compacted, and a moved event is not found
-- (the next cancel is then queued).
local function on_event(p, kind, from, ok, a, b, c, d)
    if kind == "CANCEL" then
        local s = host_chan(p, "events")
        local pend, at = p.cancels, p.cancel_at
        local w = pend and pend[from]
        if w then
            local q, i = s.buf, at[from]
            if q and q.h <= i and i <= q.t and q[i] == w then return end
            pend[from], at[from] = nil, nil
        end
        local ev = { kind = "pid.cancel", from = from, reason = ok, at = now_value() }
        deliver(s, ev)
        local q = s.buf
        if q and q[q.t] == ev then
            if not pend then
                pend, at = setmetatable({}, { __mode = "v" }), {}
                p.cancels, p.cancel_at = pend, at
            end
            pend[from], at[from] = ev, q.t
        end
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
        if id2 == 0 then -- its park (see finish_one) is over: its wake-ups
            H.unpark(p.id) -- queued again in order, each still counted ready
            local held = p.held
            p.held = nil
            for i = 1, held and held.n or 0, 4 do
                p.nready = p.nready - 1
                wake(held[i], held[i + 1], held[i + 2], held[i + 3])
            end
            return more
        end
        local timers = p.timers
        local fire = timers and timers[id2]
        if fire then
            timers[id2] = nil
            fire(p, id2)
        end
    end
    return more
end

do -- (in a block: the chunk's main function is at Lua's 200 locals)
    -- What run does with a wake-up resume_next left to the kernel: parks it,
    -- or finishes it; true when the run must end there (a preempted process
    -- waits for the host's items).
    local function settle(cr, p, ok, kind, r1, r2, r3)
        if ok == nil then
            -- Its process is parked (see finish_one's measure): the wake-up
            -- waits in `p.held`, four slots each (values may be nil: `n`
            -- counts them), until timer 0 fires (handle).
            local held = p.held or { n = 0 }
            local i = held.n
            held[i + 1], held[i + 2], held[i + 3], held[i + 4] = cr, r1, r2, r3
            held.n, p.held = i + 4, held
            return false
        end
        finish_one(cr, p, ok, kind, r1, r2, r3)
        return preempted and true or false
    end

    -- The run loop, from where the machine's run (machine/run.rs, the loop
    -- for what a run usually is, in C) stopped: `done` wake-ups resumed so
    -- far, `left` of the current batch (0: drain first), and `cr ...` what
    -- resume_next left to the kernel, if anything.
    local function run(budget, done, left, cr, p, ok, kind, r1, r2, r3)
        if cr ~= nil then
            if settle(cr, p, ok, kind, r1, r2, r3) then return true end
            if left <= 0 and done >= budget then return true end
        end
        -- `taken`: the host's items converted in this run, at most `budget`;
        -- the rest wait, counted in their processes' mailboxes (so a flood
        -- meets its receiver's mailbox_limit), while what they woke runs.
        local taken = 0
        while true do
            if left <= 0 then
                -- Take the host's items (drain, in C: a host call's value for a
                -- coroutine in `await`, a message, a start or an event goes to
                -- its process there, as done_next does); -1 when the next one
                -- needs the kernel (H.next converts it into Lua values), else
                -- how many wake-ups are queued.
                left = drain()
                while left < 0 do
                    if left == -2 then
                        -- A process was sent more than its limit between its
                        -- resumes (events it never reads): measured now, as
                        -- after a resume whose charge passed it (finish_one).
                        local p = procs[H.overdue()]
                        if p then finish_one(nil, p, true, true, BLOCK) end
                        left = drain()
                    elseif taken >= budget then
                        left = rq_len()
                        if left <= 0 then return true end
                        break
                    elseif handle(H_next()) then
                        taken = taken + 1
                        left = drain()
                    else left = rq_len() end
                end
                if preempted then
                    -- Queued behind what the host's items woke, unless its
                    -- process ended or dropped it meanwhile (see `preempted`).
                    local cr = preempted
                    local p = cr.p
                    preempted = false
                    if cr.th and p.env then
                        p.nready = p.nready - 1 -- counted when preempted; wake counts it
                        wake(cr)
                        left = rq_len()
                    end
                end
                if left <= 0 then return false end
            end
            -- The wake-ups queued now, resumed in C batch after batch until
            -- one needs the kernel, the host has an item, or the budget is
            -- spent at the end of a batch.
            local n, rest
            n, rest, cr, p, ok, kind, r1, r2, r3 = resume_next(budget - done, left)
            done, left = done + n, rest
            if cr ~= nil and settle(cr, p, ok, kind, r1, r2, r3) then return true end
            if left <= 0 and done >= budget then return true end
        end
    end
    M.bind_run(run, function() return preempted end)
end

