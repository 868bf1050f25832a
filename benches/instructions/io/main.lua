-- sql: point queries on a table of 1,000 rows, one after another.
-- fs: n calls, half of them 4 KiB file writes over 50 names, then as many
-- reads of them back.
local sql = require("sql")
local fs = require("fs")

local function queries(n)
    local db = assert(sql.get("bench:db"))
    assert(db:execute("CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT)"))
    assert(db:execute([[WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
        INSERT INTO kv (v) SELECT 'value' FROM n]]))
    for i = 1, n do
        local rows = assert(db:query("SELECT v FROM kv WHERE id = ?", { i % 1000 + 1 }))
        if #rows ~= 1 then error("no row") end
    end
end

local function files(n)
    local vol = assert(fs.get("bench:files"))
    local data = string.rep(string.rep("x", 1024), 4)
    local names = {}
    for i = 1, 50 do names[i] = "f" .. i end
    for i = 1, n // 2 do assert(vol:writefile(names[i % 50 + 1], data)) end
    for i = 1, n // 2 do assert(#vol:readfile(names[i % 50 + 1]) == 4096) end
end

return function(what, n)
    n = tonumber(n) or 1000
    if what == "sql" then return queries(n) end
    if what == "fs" then return files(n) end
    error("unknown workload " .. tostring(what))
end
