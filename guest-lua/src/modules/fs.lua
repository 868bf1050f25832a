-- The `fs` module (modules.md §3): the Lua face of warren-fs.
--
-- Loaded once per VM by the kernel with its host-call API (K) and the host
-- functions (H). A volume handle carries its id and its working directory;
-- every call re-checks the caller's `fs.get` grant on the host side, and
-- every path is resolved there beneath the volume's root directory handle
-- (cap-std), never as a host path. Open files are handle ids in the
-- caller's own handle table.

local K, H = ...
local call, call_as, entry_id, mkerr, raw_getmetatable = K.call, K.call_as, K.entry_id, K.mkerr, K.raw_getmetatable
-- A handle is told by its metatable, compared raw: a process's own
-- metatable may carry an __eq of its own (its metatable's).
local rawequal = rawequal
local type, rawget, rawset, setmetatable, error, math_type = type, rawget, rawset, setmetatable, error, math.type
local H_get, H_op, H_open, H_file = H.fs_get, H.fs_op, H.fs_open, H.fs_file

local fs = { type = { FILE = "file", DIR = "directory" }, seek = { SET = "set", CUR = "cur", END = "end" } }

local function invalid(msg) return nil, mkerr("INVALID", msg) end

local VolMethods, FileMethods = {}, {}
local VolMT = { __index = VolMethods, __metatable = false, __name = "fs.volume" }
local FileMT = { __index = FileMethods, __metatable = false, __name = "fs.file" }

local function check(self, mt, what)
    if type(self) ~= "table" or not rawequal(raw_getmetatable(self), mt) then
        error(what .. ": called on something that is not a " .. mt.__name .. " handle", 3)
    end
end

function fs.get(id)
    if type(id) ~= "string" or id == "" then return invalid("fs.get: the volume id must be a non-empty string") end
    local me, entry = entry_id()
    local ok, kind, msg = H_get(me, entry, id)
    if not ok then return nil, mkerr(kind, msg) end
    return setmetatable({ _id = id, _cwd = "/" }, VolMT)
end

-- A volume handle's id and directory. The handle is its process's own
-- table, which it may have rewritten (`rawset(vol, "_id", {})`): fields
-- that are not strings are refused here, where the host's conversion
-- raised.
local function place(self, what)
    local id, cwd = rawget(self, "_id"), rawget(self, "_cwd")
    if type(id) ~= "string" or type(cwd) ~= "string" then
        return nil, mkerr("INVALID", what .. ": the volume handle was altered: its id or directory is not a string")
    end
    return id, cwd
end

-- Runs volume operation `op` on path `p` (and `a`, `b`).
local function vol_op(self, what, op, p, a, b)
    check(self, VolMT, what)
    if type(p) ~= "string" then return invalid(what .. ": the path must be a string") end
    local id, cwd = place(self, what)
    if not id then return nil, cwd end
    return call_as(H_op, id, cwd, op, p, a, b)
end

function VolMethods:readfile(p) return vol_op(self, "vol:readfile", "read", p) end
VolMethods.read_file = VolMethods.readfile
local copy_file -- function(self, p, source, mode), below
function VolMethods:writefile(p, data, mode)
    if mode ~= nil and type(mode) ~= "string" then return invalid("vol:writefile: mode must be a string") end
    if type(data) == "table" and rawequal(raw_getmetatable(data), FileMT) then
        return copy_file(self, p, data, mode or "w")
    end
    if type(data) ~= "string" then
        return invalid("vol:writefile: data must be a string or an open fs file (streams are not supported yet)")
    end
    return vol_op(self, "vol:writefile", "write", p, data, mode or "w")
end
VolMethods.write_file = VolMethods.writefile
function VolMethods:exists(p) return vol_op(self, "vol:exists", "exists", p) end
function VolMethods:isdir(p) return vol_op(self, "vol:isdir", "isdir", p) end
function VolMethods:stat(p) return vol_op(self, "vol:stat", "stat", p) end
function VolMethods:mkdir(p) return vol_op(self, "vol:mkdir", "mkdir", p) end
function VolMethods:remove(p) return vol_op(self, "vol:remove", "remove", p) end
function VolMethods:readdir(p)
    local list, err = vol_op(self, "vol:readdir", "readdir", p)
    if not list then return nil, err end
    local i = 0
    return function()
        i = i + 1
        return list[i]
    end
end
function VolMethods:chdir(p)
    local cwd, err = vol_op(self, "vol:chdir", "chdir", p)
    if not cwd then return nil, err end
    rawset(self, "_cwd", cwd)
    return true
end
function VolMethods:pwd()
    check(self, VolMT, "vol:pwd")
    return rawget(self, "_cwd")
end
function VolMethods:open(p, mode)
    check(self, VolMT, "vol:open")
    if type(p) ~= "string" then return invalid("vol:open: the path must be a string") end
    if type(mode) ~= "string" then return invalid("vol:open: mode must be \"r\", \"w\", \"a\" or \"wx\"") end
    local id, cwd = place(self, "vol:open")
    if not id then return nil, cwd end
    local h, err = call_as(H_open, id, cwd, p, mode)
    if not h then return nil, err end
    return setmetatable({ _h = h }, FileMT)
end

-- A file's handle id. The file is its process's own table, which it may
-- have rewritten: an `_h` that is not an integer is no handle's (-1), so
-- the host refuses it as any closed one (its conversion raised).
local function hid(t)
    local h = rawget(t, "_h")
    return math_type(h) == "integer" and h or -1
end

local function file_op(self, what, op, a, b)
    check(self, FileMT, what)
    local me = entry_id()
    return call(H_file, me, hid(self), op, a, b)
end
-- file:read(n): at the end of the file, nil and a NOT_FOUND error (Wippy's way).
function FileMethods:read(n)
    if n ~= nil and math_type(n) ~= "integer" then return invalid("file:read: n must be an integer") end
    local data, err = file_op(self, "file:read", "read", n or 4096)
    if data == false then return nil, mkerr("NOT_FOUND", "end of file") end
    return data, err
end
function FileMethods:write(s)
    if type(s) ~= "string" then return invalid("file:write: data must be a string") end
    return file_op(self, "file:write", "write", s)
end
function FileMethods:seek(whence, offset)
    if type(whence) ~= "string" then return invalid("file:seek: whence must be fs.seek.SET, CUR or END") end
    if offset ~= nil and math_type(offset) ~= "integer" then return invalid("file:seek: offset must be an integer") end
    return file_op(self, "file:seek", "seek", whence, offset or 0)
end
function FileMethods:stat() return file_op(self, "file:stat", "stat") end
function FileMethods:sync() return file_op(self, "file:sync", "sync") end
function FileMethods:close()
    check(self, FileMT, "file:close")
    H.fs_close(entry_id(), hid(self))
    return true
end

-- vol:writefile(p, file): the rest of an open fs file, copied in chunks
-- (never all of it in memory) into `p` opened with `mode`: at most what
-- the source held past its position when the call started, so a file
-- copied onto its own end (`vol:writefile("a", vol:open("a", "r"), "a")`),
-- or one something else keeps growing, is copied once; unbounded, that
-- copy never reached the end it was writing and filled the disk, its time
-- on the blocking lane counted by no CPU budget.
local COPY_CHUNK = 65536
function copy_file(self, p, source, mode)
    check(self, VolMT, "vol:writefile")
    if type(p) ~= "string" then return invalid("vol:writefile: the path must be a string") end
    local id, cwd = place(self, "vol:writefile")
    if not id then return nil, cwd end
    local me, entry = entry_id()
    -- The source first: a closed one, or one not open for reading, left
    -- the destination opened with its mode (created or truncated) before
    -- its first read failed.
    local src = hid(source)
    if not H.fs_alive(me, src) then return invalid("vol:writefile: the source file is closed") end
    local left, lerr = call(H_file, me, src, "remaining")
    if not left then return nil, lerr end
    local h, err = call(H_open, me, entry, id, cwd, p, mode)
    if not h then return nil, err end
    while left > 0 do
        local chunk, rerr = call(H_file, me, src, "read", left < COPY_CHUNK and left or COPY_CHUNK)
        if chunk == false then break end -- the source shrank
        if chunk == nil then H.fs_close(me, h) return nil, rerr end
        local ok, werr = call(H_file, me, h, "write", chunk)
        if not ok then H.fs_close(me, h) return nil, werr end
        left = left - #chunk
    end
    H.fs_close(me, h)
    return true
end

-- file:scanner(split): "lines" (default), "words", "bytes", "runes".
function FileMethods:scanner(split)
    check(self, FileMT, "file:scanner")
    if not H.fs_alive(entry_id(), hid(self)) then return invalid("file:scanner: the file is closed") end
    local function read()
        local data, err = file_op(self, "scanner:scan", "read", 65536)
        if data == false then return false end
        return data, err
    end
    return K.new_scanner(read, split, "file:scanner")
end

return fs
