-- The README's tour. Run with: cargo run -- run examples/hello.lua
local time = require("time")

local function worker(n)
    local msg = process.inbox():receive()          -- blocks this process only
    process.send(msg:from(), "result", n * msg:payload():data())
end

return function(role, n)
    if role == "worker" then return worker(tonumber(n)) end

    local events = process.events()
    local pid = process.spawn_monitored("script:main", "warren:default", "worker", "6")
    process.send(pid, "job", 7)                      -- payloads are copied
    local answer = process.inbox():receive():payload():data()
    local ev = events:receive()                      -- pid.exit, since we monitor it
    print("answer", answer, "worker exited:", ev.kind, ev.result.value)

    -- Coroutines inside one process, Go-style channels and select:
    local ch = channel.new(4)
    coroutine.spawn(function() for i = 1, 3 do ch:send(i) end ch:close() end)
    local sum = 0
    while true do
        local r = channel.select({ ch:case_receive(), time.after("1s"):case_receive() })
        if r.channel ~= ch or not r.ok then break end
        sum = sum + r.value
    end
    return sum                                       -- `return nil, err` is an abnormal exit
end
