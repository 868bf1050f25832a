-- The `sql` module (modules.md §1): the Lua face of warren-sql.
--
-- Loaded once per VM by the kernel with its host-call API (K) and the host
-- functions (H). Every value a process hands over is read raw (rawget,
-- next, type): no metamethod of the caller runs here. Parameters are
-- flattened into a kind string and a value array before they reach the
-- host, which re-checks each. Every call on a database re-checks the
-- caller's `db.get` grant on the host side; transactions and statements
-- are handle ids in the caller's own handle table.

local K, H = ...
local call, call_as, entry_id, mkerr, freeze, raw_getmetatable = K.call, K.call_as, K.entry_id, K.mkerr, K.freeze, K.raw_getmetatable
local type, rawget, rawset, rawequal, next, setmetatable, error = type, rawget, rawset, rawequal, next, setmetatable, error
local math_type, tointeger, tonumber, tostring = math.type, math.tointeger, tonumber, tostring
local s_format, s_match, t_concat = string.format, string.match, table.concat
local H_get, H_query, H_execute, H_begin, H_prepare = H.sql_get, H.sql_query, H.sql_execute, H.sql_begin, H.sql_prepare
local H_tx, H_stmt, H_stats, H_close = H.sql_tx, H.sql_stmt, H.sql_stats, H.sql_close

-- Most parameters of one statement (SQLite's own limit); a table with a
-- huge integer key would otherwise mean that many NULLs.
local MAX_PARAMS = 32766

local sql = {}
local NULL = freeze({}, "sql.NULL")
sql.NULL = NULL
sql.type = { POSTGRES = "postgres", MYSQL = "mysql", SQLITE = "sqlite", UNKNOWN = "unknown" }
sql.isolation = {
    DEFAULT = "default", READ_UNCOMMITTED = "read_uncommitted", READ_COMMITTED = "read_committed",
    WRITE_COMMITTED = "write_committed", REPEATABLE_READ = "repeatable_read", SERIALIZABLE = "serializable",
}
local ISOLATIONS = {}
for _, v in next, sql.isolation do ISOLATIONS[v] = true end

-- sql.as.*: a parameter with an explicit type.
local AsMT = { __metatable = false, __name = "sql.as" }
local function as(kind) return function(v) return setmetatable({ k = kind, v = v }, AsMT) end end
sql.as = { int = as("i"), float = as("f"), text = as("t"), binary = as("x"), null = function() return setmetatable({ k = "n" }, AsMT) end }

local function invalid(msg) return nil, mkerr("INVALID", msg) end

-- The kind and value an sql.as wrapper sends, converting its value.
local function typed(w, what, i)
    local k, v = rawget(w, "k"), rawget(w, "v")
    local t = type(v)
    if k == "n" then return "n", nil end
    if k == "i" then
        local n = (t == "number" or t == "string") and tonumber(v) or nil
        n = n and tointeger(n)
        if n then return "i", n end
    elseif k == "f" then
        local n = (t == "number" or t == "string") and tonumber(v) or nil
        if n then return "f", n + 0.0 end
    elseif k == "t" then
        if t == "string" then return "t", v end
        if t == "number" or t == "boolean" then return "t", tostring(v) end
    elseif k == "x" then
        if t == "string" then return "x", v end
    end
    local names = { i = "sql.as.int", f = "sql.as.float", t = "sql.as.text", x = "sql.as.binary" }
    return nil, s_format("%s: parameter %d: %s cannot take a %s", what, i, names[k] or "sql.as", t)
end

-- The kind letter and value SQL gets for parameter `i` (`v`), or nil and
-- why it cannot take it.
local function param(v, what, i)
    local t = type(v)
    if v == nil or rawequal(v, NULL) then return "n", v end
    if t == "boolean" then return "b", v end
    if t == "number" then return math_type(v) == "integer" and "i" or "f", v end
    if t == "string" then return "t", v end
    if t == "table" and rawequal(raw_getmetatable(v), AsMT) then return typed(v, what, i) end
    return nil, s_format("%s: parameter %d is a %s, which SQL cannot take", what, i, t)
end

-- Flattens `params` (an array whose length is its highest positive integer
-- key; holes are NULL) into a kind string and a value array; one parameter
-- comes as itself and none as nil (sql.rs reads either), so the usual call
-- makes no table.
local function flatten(params, what)
    if params == nil then return "", nil end
    if type(params) ~= "table" then return nil, what .. ": params must be an array (a table)" end
    local n = 0
    for k in next, params do
        if math_type(k) == "integer" and k > n then
            if k > MAX_PARAMS then
                return nil, s_format("%s: parameter index %d is past the limit of %d parameters", what, k, MAX_PARAMS)
            end
            n = k
        end
    end
    if n == 1 then -- the usual case: no table grown, no concat
        local k, v = param(rawget(params, 1), what, 1)
        if not k then return nil, v end
        return k, v
    end
    local kinds, vals = {}, {}
    for i = 1, n do
        local k, v = param(rawget(params, i), what, i)
        if not k then return nil, v end
        kinds[i], vals[i] = k, v
    end
    return t_concat(kinds), vals
end

local DbMethods, TxMethods, StmtMethods = {}, {}, {}
local DbMT = { __index = DbMethods, __metatable = false, __name = "sql.db" }
local TxMT = { __index = TxMethods, __metatable = false, __name = "sql.tx" }
local StmtMT = { __index = StmtMethods, __metatable = false, __name = "sql.stmt" }

-- `self` must be a handle of this module: anything else raises (the one
-- misuse that raises rather than returning an error, as in Wippy).
local function check(self, mt, what)
    if type(self) ~= "table" or not rawequal(raw_getmetatable(self), mt) then
        error(s_format("%s: called on something that is not a %s handle", what, mt.__name), 3)
    end
end

function sql.get(id)
    if type(id) ~= "string" or id == "" then return invalid("sql.get: the database id must be a non-empty string") end
    local me, entry = entry_id()
    local ok, kind, msg = H_get(me, entry, id)
    if not ok then return nil, mkerr(kind, msg) end
    return setmetatable({ _id = id, _type = kind }, DbMT)
end

-- Runs `sql` with `params` through `start(me, entry, target, sql, kinds, vals)`;
-- the target is a database id (a string) or a transaction's handle id.
local function run(start, target, what, q, params)
    if type(q) ~= "string" then return invalid(what .. ": the SQL must be a string") end
    local kinds, vals = flatten(params, what)
    if not kinds then return invalid(vals) end
    return call_as(start, target, q, kinds, vals)
end

-- Plain field reads: `self` is checked to be a handle of this module, so
-- an absent field goes to DbMethods (which has no `_` fields), never to
-- code of the caller's.
-- The handle is its process's own table, which it may have rewritten
-- (`rawset(db, "_id", {})`): an id that is not a string is refused here,
-- where the host's conversion raised.
local function db_target(self, what)
    check(self, DbMT, what)
    if self._released then return nil, "was released" end
    local id = rawget(self, "_id")
    if type(id) ~= "string" then return nil, "was altered: its id is not a string" end
    return id
end
local function released(what, why) return invalid(what .. ": the database handle " .. why) end

function DbMethods:query(q, params)
    local target, why = db_target(self, "db:query")
    if not target then return released("db:query", why) end
    return run(H_query, target, "db:query", q, params)
end
function DbMethods:execute(q, params)
    local target, why = db_target(self, "db:execute")
    if not target then return released("db:execute", why) end
    return run(H_execute, target, "db:execute", q, params)
end
function DbMethods:prepare(q)
    local target, why = db_target(self, "db:prepare")
    if not target then return released("db:prepare", why) end
    if type(q) ~= "string" then return invalid("db:prepare: the SQL must be a string") end
    local h, err = call_as(H_prepare, target, q)
    if not h then return nil, err end
    return setmetatable({ _h = h }, StmtMT)
end
function DbMethods:begin(opts)
    local target, why = db_target(self, "db:begin")
    if not target then return released("db:begin", why) end
    local isolation, read_only = "default", false
    if opts ~= nil then
        if type(opts) ~= "table" then return invalid("db:begin: options must be a table") end
        local iso, ro = rawget(opts, "isolation"), rawget(opts, "read_only")
        if iso ~= nil then
            if type(iso) ~= "string" or not ISOLATIONS[iso] then
                return invalid("db:begin: unknown isolation level " .. K.describe_cut(iso))
            end
            isolation = iso
        end
        if ro ~= nil and type(ro) ~= "boolean" then return invalid("db:begin: read_only must be a boolean") end
        read_only = ro == true
    end
    local h, err = call_as(H_begin, target, isolation, read_only)
    if not h then return nil, err end
    return setmetatable({ _h = h, _type = rawget(self, "_type") }, TxMT)
end
function DbMethods:type()
    check(self, DbMT, "db:type")
    return rawget(self, "_type")
end
function DbMethods:stats()
    local target, why = db_target(self, "db:stats")
    if not target then return released("db:stats", why) end
    local me, entry = entry_id()
    local stats, kind, msg = H_stats(me, entry, target)
    if stats == false then return nil, mkerr(kind, msg) end
    return stats
end
function DbMethods:release()
    check(self, DbMT, "db:release")
    rawset(self, "_released", true)
    return true
end

-- Transactions and statements: handle ids in the caller's table, which
-- it may have rewritten: an `_h` that is not an integer is no handle's
-- (-1), refused by the host as any closed one (its conversion raised).
local function hid(t)
    local h = rawget(t, "_h")
    return math_type(h) == "integer" and h or -1
end
function TxMethods:query(q, params)
    check(self, TxMT, "tx:query")
    return run(H_query, hid(self), "tx:query", q, params)
end
function TxMethods:execute(q, params)
    check(self, TxMT, "tx:execute")
    return run(H_execute, hid(self), "tx:execute", q, params)
end
function TxMethods:prepare(q)
    check(self, TxMT, "tx:prepare")
    if type(q) ~= "string" then return invalid("tx:prepare: the SQL must be a string") end
    local h, err = call_as(H_prepare, hid(self), q)
    if not h then return nil, err end
    return setmetatable({ _h = h }, StmtMT)
end
local function tx_call(self, action, name)
    check(self, TxMT, "tx:" .. action)
    if name ~= nil or action == "savepoint" or action == "rollback_to" or action == "release" then
        if type(name) ~= "string" or not s_match(name, "^[A-Za-z0-9_]+$") then
            return invalid(s_format("tx:%s: savepoint name %s must match [A-Za-z0-9_]+", action, K.describe_cut(name)))
        end
    end
    local me = entry_id()
    local ok, err = call(H_tx, me, hid(self), action, name)
    if ok == nil then return nil, err end
    return true
end
function TxMethods:commit() return tx_call(self, "commit") end
function TxMethods:rollback() return tx_call(self, "rollback") end
function TxMethods:savepoint(name) return tx_call(self, "savepoint", name) end
function TxMethods:rollback_to(name) return tx_call(self, "rollback_to", name) end
function TxMethods:release(name) return tx_call(self, "release", name) end
function TxMethods:db_type()
    check(self, TxMT, "tx:db_type")
    return rawget(self, "_type")
end

local function stmt_run(self, action, params)
    check(self, StmtMT, "stmt:" .. action)
    local what = "stmt:" .. action
    local kinds, vals = flatten(params, what)
    if not kinds then return invalid(vals) end
    return call_as(H_stmt, hid(self), action, kinds, vals)
end
function StmtMethods:query(params) return stmt_run(self, "query", params) end
function StmtMethods:execute(params) return stmt_run(self, "execute", params) end
function StmtMethods:close()
    check(self, StmtMT, "stmt:close")
    H_close(entry_id(), hid(self))
    return true
end

return sql
