-- Warren's Lua kernel: process and coroutine records, starts, exits and waits.
-- One chunk with the other parts (see kernel.rs): it uses what earlier parts declare.

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
    H.upgraded(p.id, entry.id)
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

