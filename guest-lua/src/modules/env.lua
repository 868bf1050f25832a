-- The `env` module (modules.md §4): the Lua face of warren-env.
--
-- A process sees only variables declared as `env.variable` entries, never
-- the raw OS environment; reading needs `env.get` and writing `env.set` on
-- the variable's public name or entry id, checked on the host side.

local K, H = ...
local call, call_as, entry_id, mkerr = K.call, K.call_as, K.entry_id, K.mkerr
local type = type
local H_env = H.env_call

local env = {}

local function invalid(msg) return nil, mkerr("INVALID", msg) end

function env.get(name)
    if type(name) ~= "string" or name == "" then return invalid("env.get: the name must be a non-empty string") end
    return call_as(H_env, "get", name)
end

function env.set(name, value)
    if type(name) ~= "string" or name == "" then return invalid("env.set: the name must be a non-empty string") end
    if type(value) ~= "string" then return invalid("env.set: the value must be a string") end
    return call_as(H_env, "set", name, value)
end

function env.get_all()
    return call_as(H_env, "all")
end

return env
