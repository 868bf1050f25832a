-- app.tools:digest: reads a file of the application's volume and reports
-- its size and digests. It reaches the volume through its own grant.
local fs = require("fs")
local hash = require("hash")
local base64 = require("base64")

local function handler(path)
    local vol, err = fs.get("app:storage")
    if err then
        return nil, err
    end

    local content, read_err = vol:readfile(path)
    if read_err then return nil, read_err end

    local info, stat_err = vol:stat(path)
    if stat_err then return nil, stat_err end

    return {
        path = path,
        size = info.size,
        sha256 = hash.sha256(content),
        md5 = hash.md5(content),
        fnv32 = hash.fnv32(content),
        head = base64.encode(content:sub(1, 6)),
    }
end

return { handler = handler }
