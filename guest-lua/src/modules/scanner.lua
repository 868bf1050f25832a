-- Scanners over a stream of chunks (modules.md: `file:scanner`,
-- `stream:scanner`): "lines" (default), "words", "bytes", "runes".
--
-- Loaded by the kernel before the I/O modules, which get it as
-- K.new_scanner(read, split, what): `read()` returns the next chunk, false
-- at the end, or nil and an error. Scanners run in the calling process
-- (their buffers are its memory).
--
-- Each chunk is searched once, from where the last token ended: a line or
-- word running on past its chunk is kept as a list of pieces, joined once
-- when it ends, so nothing is re-concatenated per chunk or re-sliced per
-- token (both were quadratic). A line or word longer than MAX_TOKEN_SIZE
-- ends the scan as Go's bufio.Scanner does ("token too long"): `scan()`
-- returns false and `err()` an INVALID error naming the limit. A rune is
-- one UTF-8 sequence, at most 4 bytes; a byte that starts no valid
-- sequence is a token of its own (the scanner never alters the data).

local K = ...
local type, rawget, rawequal, setmetatable, error, raw_getmetatable = type, rawget, rawequal, setmetatable, error, K.raw_getmetatable
local s_find, s_sub, s_byte, s_format, t_concat = string.find, string.sub, string.byte, string.format, table.concat

-- Most bytes one line or word may hold, its newline or space not counted:
-- Go's bufio.MaxScanTokenSize. Prevents a file or stream without a newline
-- from making the scanner hold all of it, which ended its process at the
-- memory limit (a 20 MB line under 4 MiB) after copying the growing buffer
-- once per chunk.
local MAX_TOKEN_SIZE = 65536

local SPLITS = { lines = true, words = true, bytes = true, runes = true }
local Methods = {}
local MT = { __index = Methods, __metatable = false, __name = "scanner" }

-- Reads the next chunk after `keep` (the unfinished end of the last one);
-- false at the end or on a read error (kept for err()).
local function fill(sc, keep)
    if sc.eof then return false end
    local data, err = sc.read()
    if not data then
        sc.eof = true
        if data == nil then sc.error = err end
        return false
    end
    sc.buf, sc.pos = keep == "" and data or keep .. data, 1
    return true
end

-- Ends the scan with an INVALID "token too long"; nil.
local function too_long(sc)
    sc.eof, sc.buf, sc.pos, sc.parts, sc.held = true, "", 1, {}, 0
    sc.error = K.mkerr("INVALID", s_format("%s: token too long (the limit is %d bytes)", sc.what, MAX_TOKEN_SIZE),
        nil, { limit = MAX_TOKEN_SIZE })
    return nil
end

-- Keeps the chunk from `a` on (the start of a token running on past it)
-- and moves past the chunk; nil once the token is over the limit.
local function hold(sc, a)
    local buf = sc.buf
    local n = #buf - a + 1
    sc.buf, sc.pos = "", 1
    if n <= 0 then return true end
    if sc.held + n > MAX_TOKEN_SIZE then return too_long(sc) end
    local parts = sc.parts
    parts[#parts + 1] = a == 1 and buf or s_sub(buf, a)
    sc.held = sc.held + n
    return true
end

-- The token: the pieces held, then the chunk's bytes `a` to `b`; nil if
-- that is over the limit.
local function token(sc, a, b)
    if sc.held + (b - a + 1) > MAX_TOKEN_SIZE then return too_long(sc) end
    local piece = s_sub(sc.buf, a, b)
    if sc.held == 0 then return piece end
    local parts = sc.parts
    parts[#parts + 1] = piece
    sc.parts, sc.held = {}, 0
    return t_concat(parts)
end

-- The last token at the end of the input: the pieces held, if any.
local function last(sc)
    if sc.held == 0 then return nil end
    return token(sc, 1, 0)
end

local function scan_line(sc)
    while true do
        local buf, pos = sc.buf, sc.pos
        local i = s_find(buf, "\n", pos, true)
        local line
        if i then
            sc.pos = i + 1
            line = token(sc, pos, i - 1)
        elseif not hold(sc, pos) then
            return nil
        elseif not fill(sc, "") then
            line = last(sc)
        end
        if line or sc.eof then
            if line and s_byte(line, -1) == 13 then line = s_sub(line, 1, -2) end
            return line
        end
    end
end

local function scan_word(sc)
    while true do
        local buf, pos = sc.buf, sc.pos
        -- Spaces before a word are skipped; a word already begun goes on.
        local a = sc.held > 0 and pos or s_find(buf, "%S", pos)
        local b = a and s_find(buf, "%s", a)
        if b then
            sc.pos = b + 1
            return token(sc, a, b - 1)
        end
        if not hold(sc, a or #buf + 1) then return nil end
        if not fill(sc, "") then return last(sc) end
    end
end

local function scan_byte(sc)
    while true do
        local pos = sc.pos
        if pos <= #sc.buf then
            sc.pos = pos + 1
            return s_sub(sc.buf, pos, pos)
        end
        if not fill(sc, "") then return nil end
    end
end

-- The bytes of the rune at `pos`: the length of the UTF-8 sequence its
-- first byte starts if the bytes after it continue it, else 1 (a byte
-- that starts none); 0 if the chunk ends inside it before the input does.
local function rune_at(buf, pos, eof)
    local c = s_byte(buf, pos)
    local want = (c >= 240 and c <= 244) and 4 or (c >= 224 and c <= 239) and 3 or (c >= 194 and c <= 223) and 2 or 1
    for i = 1, want - 1 do
        local k = s_byte(buf, pos + i)
        if not k then return eof and 1 or 0 end
        if k < 128 or k > 191 then return 1 end
    end
    return want
end

local function scan_rune(sc)
    while true do
        local buf, pos = sc.buf, sc.pos
        if pos <= #buf then
            local n = rune_at(buf, pos, sc.eof)
            if n > 0 then
                sc.pos = pos + n
                return s_sub(buf, pos, pos + n - 1)
            end
        elseif sc.eof then
            return nil
        end
        -- At most 3 bytes of an unfinished rune carried into the next chunk.
        fill(sc, s_sub(buf, pos))
    end
end

local SCAN = { lines = scan_line, words = scan_word, bytes = scan_byte, runes = scan_rune }

function Methods:scan()
    if type(self) ~= "table" or not rawequal(raw_getmetatable(self), MT) then error("scanner:scan: not a scanner", 2) end
    if self.done then return false end
    local scan = SCAN[rawget(self, "split")]
    if not scan then error("scanner:scan: the scanner was altered: its split is not a known one", 2) end
    local token = scan(self)
    if not token then
        self.done = true
        return false
    end
    self.text_ = token
    return true
end
function Methods:text() return rawget(self, "text_") or "" end
function Methods:err() return rawget(self, "error") end

-- A scanner reading chunks with `read`, or nil and an INVALID error.
return function(read, split, what)
    split = split or "lines"
    if type(split) ~= "string" or not SPLITS[split] then
        return nil, K.mkerr("INVALID", what .. ": unknown split " .. K.describe_cut(split))
    end
    return setmetatable({ read = read, split = split, what = what, buf = "", pos = 1, parts = {}, held = 0,
        eof = false, done = false }, MT)
end
