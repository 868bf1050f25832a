-- Warren's Lua kernel: the `errors` module: error objects and their kinds.
-- One chunk with the other parts (see kernel.rs): it uses what earlier parts declare.

---------------------------------------------------------------------------
-- errors
---------------------------------------------------------------------------
-- Kinds have Wippy's string values ("NotFound", ..., and UNKNOWN is the
-- empty kind an error made without one has); the host names them
-- NOT_FOUND, ...: LUA_KIND and HOST_KIND translate at the boundary. A kind
-- a process makes up is kept as it is (and is UNKNOWN to the host).
local LUA_KIND, HOST_KIND = {}, {}
local errors = {}
do
-- host name -> Lua name, from warren-core's one list (modules.rs).
for host, lua in next, H.error_kinds do
    errors[host] = lua
    LUA_KIND[host] = lua
    LUA_KIND[lua] = lua
    HOST_KIND[lua] = host
    HOST_KIND[host] = host
end
end
local ERRSET = setmetatable({}, { __mode = "k" })
local ErrMethods = {}
-- __warren_error: error objects cross processes and languages as errors
-- (a tagged map; see convert.rs). `_text` is the chained text of a wrapped
-- error; `_message` stays the innermost message (as in Wippy).
local ErrMT = { __index = ErrMethods, __metatable = false, __warren_error = true,
    __tostring = function(e)
        local text = rawget(e, "_text")
        if type(text) == "string" then return text end
        return describe(rawget(e, "_message"))
    end }

-- Error objects keep their fields in plain keys so that they cross process
-- boundaries as data; the methods are the documented interface. `kind` is
-- a host kind name or a Lua one; retryable is true, false or nil (unset).
local function mkerr(kind, message, retryable, details, stack)
    local e = setmetatable({ _kind = LUA_KIND[kind] or "", _message = describe(message),
        _retryable = retryable, _details = details, _stack = stack or "" }, ErrMT)
    ERRSET[e] = true
    return e
end

-- Error objects, including ones that arrived from another process (revived
-- with ErrMT by the host).
local function is_err(v)
    return ERRSET[v] ~= nil or (type(v) == "table" and rawequal(raw_getmetatable(v), ErrMT))
end

function ErrMethods:kind() return rawget(self, "_kind") end
function ErrMethods:message() return rawget(self, "_message") end
function ErrMethods:retryable() return rawget(self, "_retryable") end
function ErrMethods:details() return rawget(self, "_details") end
function ErrMethods:stack() return rawget(self, "_stack") end

-- The text of an error object: its chain when wrapped.
local function err_text(e)
    local text = rawget(e, "_text")
    if type(text) == "string" then return text end
    return describe(rawget(e, "_message"))
end

do
-- Longest kind a process may give an error: kinds are labels, and they
-- travel with every copy of the error.
local MAX_KIND = 128
-- errors.new and errors.wrap read their arguments raw and run a message's
-- __tostring only through user_tostring (preempt.rs lets a preemption
-- through these frames: they change no kernel state before they return).
-- errors.new(message), errors.new{...}, or errors.new(kind, message). An
-- error made without a kind has the empty kind, and retryable nil.
function errors.new(spec, message2)
    local stack = traceback(nil, 2)
    local kind, message, retryable, details = "", spec, nil, nil
    if type(spec) == "string" and message2 ~= nil and LUA_KIND[spec] then
        kind, message = LUA_KIND[spec], message2
    elseif type(spec) == "table" and not is_err(spec) then
        kind, message = rawget(spec, "kind"), rawget(spec, "message")
        retryable, details = rawget(spec, "retryable"), rawget(spec, "details")
        if kind == nil then kind = "" end
        if type(kind) ~= "string" or #kind > MAX_KIND then
            error("errors.new: kind must be a string of at most " .. MAX_KIND .. " bytes, got " .. describe_cut(kind), 2)
        end
        kind = LUA_KIND[kind] or kind
        if message == nil then message = "error" end
        if retryable ~= nil then retryable = retryable and true or false end
    end
    local e = setmetatable({ _kind = kind, _message = user_tostring(message), _retryable = retryable,
        _details = details, _stack = stack }, ErrMT)
    ERRSET[e] = true
    return e
end

-- errors.wrap(err, msg): the same kind, retryable, details and message;
-- tostring gives "msg: <the wrapped error's text>".
function errors.wrap(err, msg)
    if err == nil then return nil end
    local stack = traceback(nil, 2)
    local e
    if is_err(err) then
        e = { _kind = rawget(err, "_kind"), _message = rawget(err, "_message"),
            _retryable = rawget(err, "_retryable"), _details = rawget(err, "_details"),
            _text = user_tostring(msg) .. ": " .. err_text(err), _stack = stack }
    else
        local text = user_tostring(err)
        e = { _kind = "", _message = text, _text = user_tostring(msg) .. ": " .. text, _stack = stack }
    end
    setmetatable(e, ErrMT)
    ERRSET[e] = true
    return e
end
end

-- errors.call_stack(err): the frames of an error's stack as a table,
-- `{ thread = "main", frames = { { source =, line =, name = }, ... } }`,
-- parsed from its traceback; nil for anything but an error object.
-- The traceback is the process's to rewrite (`rawset(err, "_stack", s)`)
-- and is parsed here, in kernel code no preemption reaches: at most its
-- first MAX_STACK_TEXT bytes, line by line (`%s*` also took newlines, and
-- 100,000 of them before a long line made the match quadratic: 490 ms
-- until the process was ended as stuck). Lua's own tracebacks are a few
-- KiB at most.
local MAX_STACK_TEXT = 65536
function errors.call_stack(err)
    if not is_err(err) then return nil end
    local stack = rawget(err, "_stack")
    if type(stack) ~= "string" then return nil end
    if #stack > MAX_STACK_TEXT then stack = s_sub(stack, 1, MAX_STACK_TEXT) end
    local frames = {}
    for source, line, what in stack:gmatch("\n[ \t]*([^\n]-):(%d+): in ([^\n]*)") do
        frames[#frames + 1] = { source = source, line = tonumber(line), name = what:match("'([^']+)'") or what }
    end
    return { thread = "main", frames = frames }
end

function errors.is(err, kind)
    -- A string compared with a string: no __eq of a forged kind can run.
    local k = is_err(err) and rawget(err, "_kind")
    if type(k) ~= "string" or type(kind) ~= "string" then return false end
    return k == (LUA_KIND[kind] or kind)
end

-- Fields of any error value, for exits and events, with the host's kind
-- name: raw reads only, each checked (an error object is a plain table its
-- process may have rawset).
local function err_fields(v)
    if is_err(v) then
        local retryable = rawget(v, "_retryable") == true
        return HOST_KIND[rawget(v, "_kind")] or "UNKNOWN", err_text(v), retryable, rawget(v, "_details")
    end
    return "UNKNOWN", describe(v), false, nil
end

-- A host call's failure triple as `nil, err`.

