-- wspawn: n `crasher` components spawned, run to a normal end and exited,
-- monitored, at most 64 alive at once (the `wasm` bench's spawn_run_exit).
-- lw: n `put` messages to a `kv` component, a `get` every 64 to wait.
-- wl: an `echo` component sends n messages, all received.
-- lwl: n round trips of a 3-field table through `echo` (Lua -> WASM -> Lua,
-- the component sending back the bytes it received).
local function spawns(n)
    local events = process.events()
    local live = 0
    for _ = 1, n do
        process.spawn_monitored("bench:crasher", "bench:processes", "fine")
        live = live + 1
        if live == 64 then
            for _ = 1, live do events:receive() end
            live = 0
        end
    end
    for _ = 1, live do events:receive() end
end

local function to_wasm(n)
    local kv = process.spawn("bench:kv", "bench:processes")
    local inbox = process.inbox()
    for i = 1, n do
        process.send(kv, "put", { key = "k", value = "v" })
        if i % 64 == 0 or i == n then
            process.send(kv, "get", { key = "k" })
            inbox:receive()
        end
    end
    process.send(kv, "stop")
end

local function from_wasm(n)
    local inbox = process.inbox()
    local echo = process.spawn("bench:echo", "bench:processes", process.pid(), n)
    for _ = 1, n do inbox:receive() end
    process.send(echo, "stop")
end

local function round_trips(n)
    local inbox = process.inbox()
    local echo = process.spawn("bench:echo", "bench:processes")
    for i = 1, n do
        process.send(echo, "ping", { id = i, kind = "tick", v = 2.5 })
        local back = inbox:receive():payload():data()
        if back.id ~= i then error("echoed " .. tostring(back.id)) end
    end
    process.send(echo, "stop")
end

return function(what, n)
    n = tonumber(n) or 1000
    if what == "wspawn" then return spawns(n) end
    if what == "lw" then return to_wasm(n) end
    if what == "wl" then return from_wasm(n) end
    if what == "lwl" then return round_trips(n) end
    error("unknown workload " .. tostring(what))
end
