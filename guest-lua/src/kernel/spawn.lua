-- Warren's Lua kernel: the process API: identity, spawns, upgrade and exec.
-- One chunk with the other parts (see kernel.rs): it uses what earlier parts declare.

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
-- other than scalars and tables).
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
    if getmetatable(b) ~= false or not rawequal(raw_getmetatable(b), SpawnerMT) then
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

function process.exec(id, host, ...)
    check_str(id, "process.exec: entry id", 2)
    check_str(host, "process.exec: host", 2)
    local p = me()
    if cannot_wait(current) then return nil, mkerr("INVALID", CANNOT_WAIT) end
    local child, kind, msg = h_spawn(p.id, id, host, false, true, nil, ...)
    if not child then return nil, mkerr(kind, msg) end
    -- Terminated if this process ends while it waits (as a function
    -- call's callee): nothing runs on for a caller that no longer waits.
    H.exec_waits_on(p.id, child)
    p.exec = p.exec or {}
    p.exec[child] = current
    local ok, v = block(current, true)
    if ok then return v end
    return nil, v
end

