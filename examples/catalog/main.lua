-- The catalogue copy: starts the HTTP endpoint (a WebAssembly component),
-- runs fetchers over ranges of item ids under a small one-for-one
-- supervisor (a failed fetcher is restarted after the item it gave up on,
-- at most MAX_RESTARTS times in all), then reports from the database.
--   scripts/example catalog
local sql = require("sql")
local time = require("time")
local log = require("logger"):named("catalog")

local HOST = "catalog:processes"
local ITEMS, FETCHERS, MAX_RESTARTS = 60, 4, 20

local function schema(db)
    assert(db:execute([[
        CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL);
        CREATE TABLE unavailable (id INTEGER PRIMARY KEY)]]))
end

local function start_endpoint()
    local ready = process.listen("httpd.ready") -- before it can answer
    local httpd = process.spawn_linked("catalog:httpd", HOST, process.pid())
    local base = ready:receive()
    process.unlisten(ready)
    return httpd, base
end

-- Runs the fetchers; returns how many restarts it took.
local function supervise(base)
    local ranges, restarts = {}, 0
    local per = ITEMS // FETCHERS
    for i = 1, FETCHERS do
        local from, to = (i - 1) * per + 1, i * per
        local pid = process.spawn_monitored("catalog:fetcher", HOST, base, from, to)
        ranges[pid] = { from, to }
    end
    local events = process.events()
    while next(ranges) do
        local ev = events:receive()
        local range = ranges[ev.from]
        if ev.kind == process.event.EXIT and range then
            ranges[ev.from] = nil
            local err = ev.result and ev.result.error
            if err then
                -- Resume after the item it gave up on.
                local failed = tonumber(err:message():match("item (%d+)")) or range[1]
                log:warn("fetcher failed", { from = range[1], to = range[2], reason = err:message() })
                if failed < range[2] then
                    restarts = restarts + 1
                    if restarts > MAX_RESTARTS then error("too many restarts") end
                    local pid = process.spawn_monitored("catalog:fetcher", HOST, base, failed + 1, range[2])
                    ranges[pid] = { failed + 1, range[2] }
                end
            end
        end
    end
    return restarts
end

local function report(db, restarts)
    local totals = assert(db:query("SELECT count(*) AS n, sum(price) AS total FROM items"))[1]
    local top = assert(db:query("SELECT name, price FROM items ORDER BY price DESC, id LIMIT 3"))
    local missing = assert(db:query("SELECT count(*) AS n FROM unavailable"))[1].n
    print(string.format("copied %d items (total price %.2f); %d unavailable; %d fetcher restarts",
        totals.n, totals.total, missing, restarts))
    for i, row in ipairs(top) do
        print(string.format("  #%d %s  %.2f", i, row.name, row.price))
    end
    return totals.n
end

local function main()
    local db = assert(sql.get("catalog:db"))
    schema(db)
    local httpd, base = start_endpoint()
    log:info("endpoint ready", { url = base })
    local restarts = supervise(base)
    local n = report(db, restarts)
    process.send(httpd, "stop")
    if n ~= 50 then error("expected 50 items, copied " .. n) end
end

return { main = main }
