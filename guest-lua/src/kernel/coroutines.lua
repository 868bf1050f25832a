-- Warren's Lua kernel: coroutine: scheduler-aware resume and wrap, coroutine.spawn.
-- One chunk with the other parts (see kernel.rs): it uses what earlier parts declare.

---------------------------------------------------------------------------
-- coroutine: scheduler-aware resume/wrap, plus coroutine.spawn.
---------------------------------------------------------------------------
-- User coroutines suspended while they pass a kernel wait up (a nested
-- coroutine blocked in a receive, a preemption, an upgrade), and the
-- nested coroutine that waits: what resumes them is the kernel, with the
-- wait's result. Another coroutine of the process that resumed one by
-- hand handed the nested wait a result nobody sent (and the value then
-- sent went to a chain nobody waited on), so user code may neither
-- resume nor close them (`user_coroutine`).
local INWAIT = setmetatable({}, { __mode = "k" })

local resume_step
do -- (the kernel's chunk is near Lua's 200 locals: these stay in here)
    -- The kernel's resume of `co`'s resumer (the running coroutine) after
    -- it passed `co`'s wait up: both may be resumed by hand again.
    local function passed_up(co, ...)
        INWAIT[coroutine.running()] = nil
        INWAIT[co] = nil
        return resume_step(co, co_resume(co, ...))
    end

    function resume_step(co, ok, first, ...)
        if not ok and (first == MEMERR or H_doomed()) then error(first, 0) end
        if ok and (first == BLOCK or first == UPGRADE or first == PREEMPT)
            and co_status(co) == "suspended" then
            if first == PREEMPT and not co_isyieldable() then
                -- Resumed from code called from C: the preemption cannot be
                -- passed up from here, so carry on (the hook tries again).
                return resume_step(co, co_resume(co))
            end
            -- (Where it cannot yield, the yield below raises as it did.)
            if co_isyieldable() then
                INWAIT[coroutine.running()] = true
                INWAIT[co] = true
            end
            return passed_up(co, co_yield(first, ...))
        end
        return ok, first, ...
    end
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
    if INWAIT[co] then return false, "cannot resume a coroutine waiting in the kernel" end
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
    -- Raises where only the kernel would get the values (a process's
    -- main function, a coroutine.spawn), as Lua's does in a main thread.
    -- isyieldable stays Lua's: true there, where a process may block.
    yield = M.user_yield,
    status = co_status,
    running = coroutine.running,
    isyieldable = coroutine.isyieldable,
    close = function(co)
        if M.is_kthread(co) then error("cannot close a scheduler-managed coroutine", 2) end
        if INWAIT[co] then error("cannot close a coroutine waiting in the kernel", 2) end
        local ok, err = co_close(co)
        if ok then return true end
        -- A `__close` handler ended by the process's own end (memory, the
        -- stuck limit, the budget): that error is the process's.
        if err == MEMERR or H_doomed() then error(err, 0) end
        return false, err
    end,
    wrap = function(fn)
        local co = co_create(fn)
        local f = function(...)
            if INWAIT[co] then error("cannot resume a coroutine waiting in the kernel", 2) end
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

