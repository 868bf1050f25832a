-- Two processes trading messages. Run with:
--   cargo run -- run examples/ping-pong.lua
-- The script is its own entry (script:main), so it spawns a second copy of
-- itself in the "pong" role.
local time = require("time")

local ROUNDS = 5

local function pong()
    local inbox = process.inbox()
    while true do
        local msg = inbox:receive()
        if msg:topic() == "stop" then return "pong done" end
        process.send(msg:from(), "pong", msg:payload():data() + 1)
    end
end

local function ping()
    local partner = process.spawn_monitored("script:main", "warren:default", "pong")
    local inbox = process.inbox()
    local n = 0
    local started = time.now()
    for round = 1, ROUNDS do
        process.send(partner, "ping", n)
        n = inbox:receive():payload():data()
        print(("round %d: ping got %d back from %s"):format(round, n, partner))
    end
    process.send(partner, "stop")
    local ev = process.events():receive()
    print(("partner exited with %q after %s"):format(ev.result.value, tostring(time.now():sub(started))))
    return n
end

return function(role)
    if role == "pong" then return pong() end
    return ping()
end
