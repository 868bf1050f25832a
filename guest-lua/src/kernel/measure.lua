-- Warren's Lua kernel: measuring what a process can reach, for memory_per_process.
-- One chunk with the other parts (see kernel.rs): it uses what earlier parts declare.

---------------------------------------------------------------------------
-- Measuring a process: what it can reach, for memory_per_process.
---------------------------------------------------------------------------
-- Objects every process shares (libraries, kernel tables): never charged.
local NOT_OWNED = setmetatable({}, { __mode = "k" })
local measure -- function(p): bytes, exact (below)
do
-- The kernel's chunk (a name `load` refuses to a process): its functions'
-- upvalues are the kernel's tables, not looked into. The I/O modules'
-- functions are looked into (their closures hold what a process asked
-- for, a directory listing); the tables they share are marked
-- `NOT_OWNED` (hostcalls).
local KERNEL_SOURCE = dbg.getinfo(1, "S").source
-- The measure stops once it has found more than the limit: the verdict
-- is the same, and a process holding millions of objects cannot make its
-- worker walk them all between processes.
local MEASURE_ENOUGH = H.memory_per_process

-- The machine's C functions (machine/raw.rs) share their upvalues: the
-- kernel's own tables, one of which reaches every process record (`bypid`).
-- A process reaches those functions through any kernel method (a
-- message's `from`), and a C function's upvalues are looked into (a
-- `string.gmatch` iterator holds its subject there): without this, a
-- process holding a message was measured as every process of its VM, and
-- ended for memory it did not hold.
for _, f in next, M do
    local i = 1
    while type(f) == "function" do
        local name, v = dbg.getupvalue(f, i)
        if name == nil then break end
        if type(v) == "table" then NOT_OWNED[v] = true end
        i = i + 1
    end
end

-- About how many bytes `p` holds: everything reachable from its globals,
-- coroutines and mailbox that no other process shares, and what the
-- kernel keeps for what it holds (a case's record, a timer's state, a
-- registry snapshot's entries, the coroutine a wrap drives). The walk is
-- in C (machine/walk.rs); the second result is false when a coroutine was
-- too deep to look at completely. It returns as soon as the count passes
-- `memory_per_process`.
local walk = M.measure
function measure(p)
    return walk(p, NOT_OWNED, CASE, TIMERS, HELD, WRAPPED, p.main.entry, KERNEL_SOURCE, MEASURE_ENOUGH)
end
end

-- The coroutine record of a process that used up its slice, until run
-- queues it again: the worker gets control back to fire timers, hand in
-- messages and run its other front-ends, and what they woke is queued
-- ahead of it (woken at once, it went before them and a timer fired
-- meanwhile waited a second slice). Counted ready meanwhile (`nready`),
-- so that no deadlock check of its process misses it.
local preempted = false

-- Finishes a wake-up that resume_next left to the kernel: resumed through
-- the step with `current` set (a plain receive is woken with (value, ok)
-- only, which it returns; a select also gets its channel: the step passes
-- `c` only when it is not nil), it raised, got a verdict, was preempted,
-- ended, or may have left its process deadlocked.
local function finish_one(cr, p, ok, kind, r1, r2, r3)
    local why
    if not ok then
        r1 = kind
        kind, why = H.leave(p.id, is_memerr(r1))
    elseif kind == false then
        kind, why = H.verdict()
    end
    local owed = M.take_owed()
    if owed and owed.env then -- a send failed between H.admit and its delivery
        note_taken(owed)
    end
    if kind == true then -- the walk's CPU time is charged to p (H.measured)
        H.measure_start()
        local park
        kind, why, park = H.measured(p.id, measure(p))
        -- Measured again before its neighbours had three times the walks'
        -- time (quota.rs, park_for): its wake-ups wait `park` ns (kept in
        -- `p.held` by run, given back by handle when timer 0 fires).
        if park then M.timer(p.id, 0, park) end
    end
    if kind then
        exit_proc(p, false, mkerr(kind, why))
        return
    end
    if ok and r1 == PREEMPT then
        p.nready = p.nready + 1 -- queued by run once the host's items are in
        preempted = cr
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

