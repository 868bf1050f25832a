-- Scanners over a stream of chunks (modules.md: `file:scanner`,
-- `stream:scanner`): "lines" (default), "words", "bytes", "runes".
--
-- Loaded by the kernel before the I/O modules, which get it as
-- K.new_scanner(read, split, what): `read()` returns the next chunk, false
-- at the end, or nil and an error. Scanners run in the calling process
-- (their buffers are its memory).

local K = ...
local type, rawget, rawequal, setmetatable, error, raw_getmetatable = type, rawget, rawequal, setmetatable, error, K.raw_getmetatable
local s_find, s_sub = string.find, string.sub

local SPLITS = { lines = true, words = true, bytes = true, runes = true }
local Methods = {}
local MT = { __index = Methods, __metatable = false, __name = "scanner" }

local function fill(sc)
    if sc.eof then return false end
    local data, err = sc.read()
    if not data then
        sc.eof = true
        if data == nil then sc.error = err end
        return false
    end
    sc.buf = sc.buf .. data
    return true
end

local function take_token(sc)
    local buf, split = sc.buf, sc.split
    if split == "lines" then
        local i = s_find(buf, "\n", 1, true)
        if i then
            local line = s_sub(buf, 1, i - 1)
            if s_sub(line, -1) == "\r" then line = s_sub(line, 1, -2) end
            return line, s_sub(buf, i + 1)
        end
        if sc.eof and buf ~= "" then return buf, "" end
    elseif split == "words" then
        local a, b = s_find(buf, "%S+")
        if a and (b < #buf or sc.eof) then return s_sub(buf, a, b), s_sub(buf, b + 1) end
    elseif split == "bytes" then
        if buf ~= "" then return s_sub(buf, 1, 1), s_sub(buf, 2) end
    else -- runes
        local a, b = s_find(buf, "^[%z\1-\127\194-\244][\128-\191]*")
        if a and (b < #buf or sc.eof) then return s_sub(buf, a, b), s_sub(buf, b + 1) end
    end
    return nil
end

function Methods:scan()
    if type(self) ~= "table" or not rawequal(raw_getmetatable(self), MT) then error("scanner:scan: not a scanner", 2) end
    while true do
        local token, rest = take_token(self)
        if token then
            self.text_, self.buf = token, rest
            return true
        end
        if not fill(self) then
            token, rest = take_token(self)
            if not token then return false end
            self.text_, self.buf = token, rest
            return true
        end
    end
end
function Methods:text() return rawget(self, "text_") or "" end
function Methods:err() return rawget(self, "error") end

-- A scanner reading chunks with `read`, or nil and an INVALID error.
return function(read, split, what)
    split = split or "lines"
    if type(split) ~= "string" or not SPLITS[split] then
        return nil, K.mkerr("INVALID", what .. ": unknown split " .. K.describe(split))
    end
    return setmetatable({ read = read, split = split, buf = "", eof = false }, MT)
end
