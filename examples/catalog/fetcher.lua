-- A fetcher: copies items `from`..`to` of the catalogue at `base` into
-- the database. A 503 is retried with a short backoff; an item still
-- unavailable after that is recorded and the fetcher fails ("let it
-- crash"): its supervisor (main.lua) restarts it after that item.
local sql = require("sql")
local http = require("http_client")
local time = require("time")
local json = require("json")
local log = require("logger"):named("fetcher")

local RETRIES = 3

local function fetch(base, id)
    for attempt = 1, RETRIES do
        local resp, err = http.get(base .. "/items/" .. id, { timeout = "2s" })
        if resp and resp.status_code == 200 then return json.decode(resp.body) end
        local why = err and err:message() or ("status " .. resp.status_code)
        log:debug("retrying", { id = id, attempt = attempt, why = why })
        time.sleep(tostring(10 * attempt) .. "ms")
    end
    return nil
end

local function main(base, from, to)
    local db = assert(sql.get("catalog:db"))
    for id = from, to do
        local item = fetch(base, id)
        if not item then
            assert(db:execute("INSERT OR REPLACE INTO unavailable (id) VALUES (?)", { id }))
            error(errors.new(errors.UNAVAILABLE, "item " .. id .. " stayed unavailable"))
        end
        assert(db:execute("INSERT OR REPLACE INTO items (id, name, price) VALUES (?, ?, ?)",
            { item.id, item.name, item.price }))
    end
    return to - from + 1
end

return { main = main }
