-- Warren's Lua kernel: measuring what a process can reach, for memory_per_process.
-- One chunk with the other parts (see kernel.rs): it uses what earlier parts declare.

---------------------------------------------------------------------------
-- Measuring a process: what it can reach, for memory_per_process.
---------------------------------------------------------------------------
-- Objects every process shares (libraries, kernel tables): never charged.
local NOT_OWNED = setmetatable({}, { __mode = "k" })
local measure -- function(p): bytes, exact (below)
do
local d_getlocal, d_getupvalue, d_getinfo = dbg.getlocal, dbg.getupvalue, dbg.getinfo
-- The kernel's chunk (a name `load` refuses to a process): its functions'
-- upvalues are the kernel's tables. The I/O modules' functions are looked
-- into (their closures hold what a process asked for, a directory
-- listing); the tables they share are marked `NOT_OWNED` (hostcalls).
local KERNEL_SOURCE = d_getinfo(1, "S").source
-- Rough sizes of Lua 5.4 objects on a 64-bit build, in bytes. A thread is
-- its lua_State (208) plus its stack: 28 slots (448) when made, 45 or more
-- while it runs, cut back when it waits (vendor/lua-src/WARREN.md); counted
-- as 1 KB (counted as 200 before, a hoard of coroutines was measured at a
-- fifth of what it held).
local SIZE_STRING, SIZE_FUNCTION, SIZE_USERDATA, SIZE_THREAD, SIZE_LOCAL = 24, 48, 48, 1000, 16
-- A call frame (a CallInfo, 64, and a few stack slots); an upvalue (its
-- pointer in the closure, 8, and the UpVal object, 40, counted per closure).
local SIZE_FRAME, SIZE_UPVALUE = 80, 48
-- What a table has allocated (header, array and node parts; a table
-- emptied after holding many entries keeps its slots).
local table_bytes, proto_bytes = H.table_bytes, H.proto_bytes
-- The measure stops once it has found more than the limit: the verdict
-- is the same, and a process holding millions of objects cannot make its
-- worker walk them all between processes.
local MEASURE_ENOUGH = H.memory_per_process

-- Seen values are keyed by identity (see push).
local identity = H.identity

-- Frames of one coroutine looked at: reaching frame n costs n steps.
local MAX_LEVELS = 1000

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
        local name, v = d_getupvalue(f, i)
        if name == nil then break end
        if type(v) == "table" then NOT_OWNED[v] = true end
        i = i + 1
    end
end

-- Pushes what the frames of `th` hold, its varargs too (the negative
-- locals: a coroutine suspended with a hundred strings passed as `...`
-- held them unmeasured), each frame counted; false if it is too deep to
-- look at every frame.
local function measure_thread(th, push)
    local level = 0
    while true do
        if level >= MAX_LEVELS then return false end
        local info = d_getinfo(th, level, "f")
        if not info then return true end
        push(info.func, SIZE_FRAME)
        for dir = 1, -1, -2 do
            local i = dir
            while true do
                local name, v = d_getlocal(th, level, i)
                if name == nil then break end
                push(v, SIZE_LOCAL)
                i = i + dir
            end
        end
        level = level + 1
    end
end

-- About how many bytes `p` holds: everything reachable from its globals,
-- coroutines and mailbox that no other process shares. Kernel functions
-- are not looked into (their upvalues reach every process). The second
-- result is false when a coroutine was too deep to look at completely.
-- It returns as soon as the count passes `memory_per_process`.
function measure(p)
    local seen = { [p.main.entry] = true }
    local stack, n, total, exact = {}, 0, 0, true
    local function push(v)
        local t = type(v)
        -- A table key compares strings by value, but only short ones are
        -- interned: a string is seen by its address, so that equal long
        -- strings, each its own allocation, each count.
        local key = v
        if t == "string" then key = identity(v) end
        if (t == "table" or t == "string" or t == "function" or t == "thread"
            or t == "channel") and not seen[key] and not NOT_OWNED[v] then
            seen[key] = true
            n = n + 1
            stack[n] = v
        end
    end
    local function counted(x, bytes)
        total = total + bytes
        push(x)
    end
    push(p)
    while n > 0 do
        if total > MEASURE_ENOUGH then return total, exact end
        local v = stack[n]
        stack[n] = nil
        n = n - 1
        local t = type(v)
        if t == "string" then
            total = total + SIZE_STRING + #v
        elseif t == "table" then
            total = total + table_bytes(v)
            if total > MEASURE_ENOUGH then return total, exact end
            for k, x in next, v do
                push(k)
                push(x)
            end
            push(raw_getmetatable(v))
            -- What the kernel holds for objects the process holds.
            push(CASE[v])
            push(TIMERS[v])
            push(HELD[v])
        elseif t == "channel" then -- a userdata and its state
            total = total + SIZE_USERDATA
            push(chan_of(v))
        elseif t == "function" then
            total = total + SIZE_FUNCTION
            push(WRAPPED[v])
            if d_getinfo(v, "S").source ~= KERNEL_SOURCE then
                -- Its code and constants, once per prototype.
                local bytes, proto = proto_bytes(v)
                if proto and not seen[proto] then
                    seen[proto] = true
                    total = total + bytes
                end
                local i = 1
                while true do
                    local name, x = d_getupvalue(v, i)
                    if name == nil then break end
                    counted(x, SIZE_UPVALUE)
                    i = i + 1
                end
            end
        else
            total = total + SIZE_THREAD
            exact = measure_thread(v, counted) and exact
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
    if kind == true then -- the walk's CPU time is charged to p (H.measured)
        H.measure_start()
        kind, why = H.measured(p.id, measure(p))
    end
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

