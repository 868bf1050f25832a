-- Warren's Lua kernel: Wippy's modules beyond the process model: json, services, io, registry, events, logger, ctx.
-- One chunk with the other parts (see kernel.rs): it uses what earlier parts declare.

---------------------------------------------------------------------------
-- Modules and the sandbox.
---------------------------------------------------------------------------
local FROZEN = setmetatable({}, { __mode = "k" })
FROZEN[time.utc], FROZEN[time.localtz] = true, true

-- A library's read-only face for processes. A table with no metatable
-- is frozen in place (machine/frozen.rs: the patched Lua refuses every
-- write), so that its fields read as any table's; its metatable only
-- names it in the error an assignment raises. A table with a metatable
-- of its own is kept behind an empty proxy instead.
local M_freeze = M.freeze
local function freeze(real, name)
    if FROZEN[real] then return real end
    for k, v in next, real do
        if type(v) == "table" and not FROZEN[v] then real[k] = freeze(v, name .. "." .. k) end
    end
    local function refuse(_, k)
        error(s_format("attempt to modify read-only table '%s' (key %s)", name, describe_cut(k)), 2)
    end
    -- `pairs` hands out an iterator of keys and values, not the table.
    local function iterate()
        local k
        return function()
            local v
            k, v = next(real, k)
            return k, v
        end
    end
    if raw_getmetatable(real) == nil then
        setmetatable(real, { __newindex = refuse, __pairs = iterate, __metatable = false })
        M_freeze(real)
        FROZEN[real] = true
        return real
    end
    local proxy = setmetatable({}, {
        __index = real,
        __newindex = refuse,
        __pairs = iterate,
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
    local s = H.services_status(me().id, id)
    if s == nil then return nil, mkerr("UNAVAILABLE", "no services: the application runs without a supervisor") end
    if not s then return nil, mkerr("NOT_FOUND", s_format("no service %q", id)) end
    return s
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
    return nil, mkerr("NOT_FOUND", "registry: no entry " .. quoted_name(id))
end
local VersionMethods = {}
local VersionMT = { __index = VersionMethods, __metatable = false,
    __newindex = function(_, k)
        error(s_format("attempt to modify read-only table 'registry version' (key %s)", describe_cut(k)), 2)
    end }
function VersionMethods.id() return 1 end
function VersionMethods.string() return "1" end
function VersionMethods.previous() return nil end
function VersionMethods.next() return nil end
-- One for every process of the VM (current_version, versions, a
-- snapshot's version): frozen in place, keeping its metatable (as the
-- loggers are, below).
local version = setmetatable({}, VersionMT)
M_freeze(version)
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
    local list = rawequal(raw_getmetatable(s), SnapMT) and HELD[s]
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
-- Every logger is frozen in place (machine/frozen.rs), keeping its
-- metatable: the root logger is one table every process of the VM gets
-- from `require`, so a field rawset on it (an `info` of the writer's) ran
-- in every other process that logged, as that process, and what it held
-- was charged to nobody. A child is as read-only as the root (Wippy's
-- loggers are userdata).
-- A logger's name and fields are kept in HELD, keyed by the logger, as a
-- registry snapshot's entries are: the measure charges them to the process
-- holding the logger (it looks there for every kernel object it reaches),
-- and a table that is not a logger (a snapshot, a forged one) names none.
do
local LoggerMethods = {}
local LoggerMT = { __index = LoggerMethods, __metatable = false, __warren = "logger",
    __newindex = function(_, k)
        error(s_format("attempt to modify read-only table 'logger' (key %s)", describe_cut(k)), 2)
    end }
local MAX_FIELDS, MAX_LINE = 64, 16384
local function make(name, fields)
    local l = setmetatable({}, LoggerMT)
    HELD[l] = { name, fields }
    M_freeze(l)
    return l
end
-- `l`'s { name, fields }, or nil when `l` is no logger.
local function record(l)
    return rawequal(raw_getmetatable(l), LoggerMT) and HELD[l] or nil
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
    local l = record(self)
    if not l then self, msg, fields, l = logger, self, msg, record(logger) end
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
    -- The name is cut too (at 1 KiB): 16 MiB names made 16 MiB lines of
    -- the log every tenant shares.
    local name = l[1]
    if #name > 1024 then name = s_sub(name, 1, 1024) .. "..." end
    local p = me()
    local info = dbg.getinfo(2, "l") -- the caller (the method tail-calls emit)
    local location = p.main.entry.id .. ":" .. tostring(info and info.currentline or 0)
    H.log_named(p.id, level, line, name, location)
end
for _, level in ipairs({ "debug", "info", "warn", "error" }) do
    LoggerMethods[level] = function(self, msg, fields) return emit(level, self, msg, fields) end
end
function LoggerMethods:with(fields)
    local l = record(self)
    if not l then error("logger:with: call it with ':' on a logger", 2) end
    if type(fields) ~= "table" then error("logger:with: fields must be a table", 2) end
    return make(l[1], merge(l[2], fields))
end
function LoggerMethods:named(name)
    local l = record(self)
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

