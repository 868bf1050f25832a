-- The `http_client` module (modules.md §2): the Lua face of warren-http.
--
-- Loaded once per VM by the kernel with its host-call API (K) and the host
-- functions (H). Options are read by the host, raw; grants (destination,
-- private addresses, redirects) are checked there before anything is
-- sent. A streamed body is a handle id in the caller's own handle table.

local K, H = ...
local call, entry_id, mkerr, raw_getmetatable = K.call, K.entry_id, K.mkerr, K.raw_getmetatable
-- A handle is told by its metatable, compared raw: a process's own
-- metatable may carry an __eq of its own (its metatable's).
local rawequal = rawequal
local type, rawget, rawset, next, setmetatable, error = type, rawget, rawset, next, setmetatable, error
local s_format, s_lower, s_gsub, s_find, s_sub, s_upper = string.format, string.lower, string.gsub, string.find, string.sub, string.upper
local H_request, H_batch, H_meta, H_read, H_close = H.http_request, H.http_batch, H.http_stream_meta, H.http_stream_read, H.http_close
local H_plain = H.http_request_plain

local http = {}

local function invalid(msg) return nil, mkerr("INVALID", msg) end

-- Response headers: canonical names (Content-Type); lookups ignore case.
local function canonical(name)
    return (s_gsub(s_lower(name), "%f[%w]%l", s_upper))
end
local HeadersMT = { __metatable = false, __index = function(t, k)
    if type(k) ~= "string" then return nil end
    local v = rawget(t, canonical(k))
    if v ~= nil then return v end
    local lower = s_lower(k)
    for name, value in next, t do
        if type(name) == "string" and s_lower(name) == lower then return value end
    end
end }

local StreamMethods = {}
local StreamMT = { __index = StreamMethods, __metatable = false, __name = "http_client.stream" }

local function response(me, v)
    if type(v) == "number" then -- a streamed body: its handle
        local meta, kind, msg = H_meta(me, v)
        if meta == false then return nil, mkerr(kind, msg) end
        meta.stream = setmetatable({ _h = v }, StreamMT)
        v = meta
    end
    local headers = rawget(v, "headers")
    if type(headers) ~= "table" then headers = {} rawset(v, "headers", headers) end
    setmetatable(headers, HeadersMT)
    if rawget(v, "cookies") == nil then rawset(v, "cookies", {}) end
    return v
end

function http.request(method, url, opts)
    if type(method) ~= "string" or method == "" then return invalid("http_client.request: the method must be a non-empty string") end
    if type(url) ~= "string" then return invalid("http_client.request: the URL must be a string") end
    if opts ~= nil and type(opts) ~= "table" then return invalid("http_client.request: options must be a table") end
    local me, entry = entry_id()
    local v, err
    if opts == nil then v, err = call(H_plain, me, entry, method, url)
    else v, err = call(H_request, me, entry, method, url, opts) end
    if v == nil then return nil, err end
    return response(me, v)
end
for _, m in next, { "get", "post", "put", "patch", "delete", "head" } do
    local method = s_upper(m)
    http[m] = function(url, opts) return http.request(method, url, opts) end
end

function http.request_batch(reqs)
    if type(reqs) ~= "table" then return invalid("http_client.request_batch: requests must be an array") end
    local me, entry = entry_id()
    local list, err = call(H_batch, me, entry, reqs)
    if list == nil then return nil, err end
    local responses, errors, failed = {}, {}, false
    for i = 1, #list do
        local item = list[i]
        if item.response then
            responses[i] = response(me, item.response)
        else
            local e = item.error
            errors[i] = mkerr(e.kind, e.message, e.retryable, e.details)
            failed = true
        end
    end
    if failed then return responses, errors end
    return responses, nil
end

-- Longest string encode_uri and decode_uri take, as the data modules'
-- inputs (data/mod.rs): one host call encodes it, up to three times its
-- size in host memory (48 MiB held the worker 193 ms and took 144 MiB).
local MAX_URI_BYTES = 16 << 20
function http.encode_uri(s)
    if type(s) ~= "string" then error("http_client.encode_uri: expects a string", 2) end
    if #s > MAX_URI_BYTES then
        error(s_format("http_client.encode_uri: the string is %d bytes, over the limit of %d", #s, MAX_URI_BYTES), 2)
    end
    return H.http_encode_uri(s)
end
function http.decode_uri(s)
    if type(s) ~= "string" then return invalid("http_client.decode_uri: expects a string") end
    if #s > MAX_URI_BYTES then
        return invalid(s_format("http_client.decode_uri: the string is %d bytes, over the limit of %d", #s, MAX_URI_BYTES))
    end
    local out, kind, msg = H.http_decode_uri(s)
    if out == false then return nil, mkerr(kind, msg) end
    return out
end

local function check_stream(self, what)
    if type(self) ~= "table" or not rawequal(raw_getmetatable(self), StreamMT) then
        error(what .. ": called on something that is not a response stream", 3)
    end
end
-- A stream's handle id: an `_h` its process rewrote to anything but an
-- integer is no handle's (-1), refused by the host as a closed one.
local function hid(t)
    local h = rawget(t, "_h")
    return math.type(h) == "integer" and h or -1
end
-- stream:read(n): up to n bytes (all that is available if n is absent or
-- 0); nil, nil at the end; nil, err on failure.
function StreamMethods:read(n)
    check_stream(self, "stream:read")
    -- A negative n read as 0 (everything available); file:read refuses it.
    if n ~= nil and (math.type(n) ~= "integer" or n < 0) then
        return invalid("stream:read: n must be a non-negative integer")
    end
    local me = entry_id()
    local data, err = call(H_read, me, hid(self), n or 0)
    if data == false then return nil, nil end
    return data, err
end
function StreamMethods:close()
    check_stream(self, "stream:close")
    H_close(entry_id(), hid(self))
    return true
end

-- stream:scanner(split): "lines" (default), "words", "bytes", "runes".
function StreamMethods:scanner(split)
    check_stream(self, "stream:scanner")
    local stream = self
    local function read()
        local data, err = stream:read(0)
        if data == nil and err == nil then return false end
        return data, err
    end
    return K.new_scanner(read, split, "stream:scanner")
end

return http
