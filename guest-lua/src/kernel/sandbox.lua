-- Warren's Lua kernel: libraries, require, the sandboxed globals, and the kernel's entry points.
-- One chunk with the other parts (see kernel.rs): it uses what earlier parts declare.

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
        -- The name quoted as ids are, at most 64 bytes: a 1 MB name made
        -- a 1 MB error (and log line).
        local shown = #name > 64 and s_sub(name, 1, 64) .. "..." or name
        error(mkerr("NOT_FOUND", s_format("module %q does not exist (entry %s)", shown, entry.id)), level + 1)
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

local function safe_load(chunk, name, mode, env)
    if mode ~= nil and mode ~= "t" then
        return nil, "load: only text chunks can be loaded (mode must be \"t\")"
    end
    if env == nil then env = me().env end
    if type(chunk) == "string" and s_byte(chunk, 1) == 27 then
        return nil, "load: binary chunks are not allowed"
    end
    -- The runtime's chunks are named "=warren-..." (a host-loaded entry's
    -- name starts with "@"): code named as the kernel's was not preempted
    -- and its functions' upvalues were not measured.
    if type(name) == "string" and s_sub(name, 1, 8) == "=warren-" then
        return nil, "load: chunk names starting with \"=warren-\" are the runtime's"
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
    -- Lua's load answers an allocation past the process's ceiling as a
    -- failed load; it is the process's memory error, which ends it, as
    -- everywhere else (a loop of loads could otherwise keep going at its
    -- ceiling).
    if not f and (is_memerr(err) or H_doomed()) then error(err, 0) end
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
-- So does any error of a doomed process (H.doomed): one past its budget, or
-- one that hit a memory error in this run, whatever error a `__close`
-- handler put in its place as the stack unwound.
-- A process's pcall and xpcall are Lua's in C (machine/protect.rs), which
-- hand a caught error to this check first.
local safe_pcall, safe_xpcall = M.pcall, M.xpcall
-- Lua's, refusing a metatable with `__gc` (machine/frozen.rs).
local safe_setmetatable = M.setmetatable
M.bind_protect(function(e)
    if is_memerr(e) then error(MEMERR, 0) end
    if H_doomed() then error(e, 0) end
end, { pcall = safe_pcall, xpcall = safe_xpcall, setmetatable = safe_setmetatable })

local real_string = string
real_string.dump = nil
local os_subset, user_math
do
    -- Longest os.date format: each conversion is a strftime call inside one
    -- C call, so a huge format would hold the worker.
    local MAX_DATE_FORMAT = 1024
    local os_date, os_time, H_clock = os.date, os.time, H.clock
    local TIME_FIELDS = { "year", "month", "day", "hour", "min", "sec", "isdst" }
    -- What os.date or os.time answers, or the error it raised, raised
    -- again at the caller's line: raised inside this wrapper, it named the
    -- kernel's chunk and line ("warren-kernel:2886: ...") instead. The
    -- process's own end (its memory, the stuck limit) passes as it is.
    local function at_caller(ok, ...)
        if ok then return ... end
        local e = ...
        if is_memerr(e) or H_doomed() then error(e, 0) end
        error(e, 2)
    end
    os_subset = {
        -- The fields are read raw here: os.time would run their __index
        -- from C, where a loop cannot be preempted.
        time = function(t)
            if type(t) ~= "table" then return at_caller(pcall(os_time, t)) end
            local plain = {}
            for i = 1, #TIME_FIELDS do
                local k = TIME_FIELDS[i]
                plain[k] = rawget(t, k)
            end
            return at_caller(pcall(os_time, plain))
        end,
        date = function(fmt, t)
            if type(fmt) == "string" and #fmt > MAX_DATE_FORMAT then
                error("os.date: format longer than " .. MAX_DATE_FORMAT .. " bytes", 2)
            end
            return at_caller(pcall(os_date, fmt, t))
        end,
        -- The process's own run time, not the whole OS process's CPU time
        -- (which would tell it how busy other tenants are).
        clock = function() return H_clock(me().id) end,
        difftime = os.difftime,
    }

end
do
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
-- `modules` is the set of the modules its `require` may load, shared by
-- the entries that list the same ones (host.rs makes it; read only).
local function new_entry(id, chunk, method, modules, imports, types)
    local e = { id = id, chunk = chunk, method = method, modules = modules, imports = imports or {}, types = types }
    NOT_OWNED[e], NOT_OWNED[chunk], NOT_OWNED[e.modules], NOT_OWNED[e.imports] = true, true, true, true
    if types then NOT_OWNED[types] = true end
    return e
end

-- The kernel's tables that hold an entry per process or object of the
-- whole VM: their growth, which happens inside whichever process adds the
-- entry that does not fit, is charged to no process (gctime.rs).
H.kernel_tables(RQ, TAKEN, UPGRADES, CASE, TIMERS, WRAPPED, HELD,
    ERRSET, procs, bypid, NOT_OWNED, INWAIT)

return { run = M.run, new_entry = new_entry, error_mt = ErrMT, module_names = function()
    local names = {}
    for k in pairs(MODULES) do names[#names + 1] = k end
    return names
end }
