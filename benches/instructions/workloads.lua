-- Workloads for scripts/instructions (instruction counts under callgrind):
-- pp (channel ping-pong round trips), ow (one-way messages to a process of
-- the same worker, 64 in flight), rr (message round trips between two
-- processes of one worker), xrr (the same between processes of two
-- workers), spawn (spawn until it waits, then stop), blk (values through
-- an unbuffered channel from a spawned coroutine: each receive blocks and
-- is resumed once, the `lua_channels` bench's blocked receive), ry (a
-- plain coroutine resume+yield, what that bench compares blk with), lib
-- (a round of four library calls, `string.format` and the like), pc (a
-- `pcall` of a function that returns its argument).
local function sink(n, window, reply)
    local inbox = process.inbox()
    process.send(reply, "ready")
    for i = 1, n do
        inbox:receive()
        if i % window == 0 or i == n then process.send(reply, "ack") end
    end
end

return function(role, n, window, reply)
    n = tonumber(n) or 1000
    if role == "sink" then return sink(n, tonumber(window), reply) end
    if role == "pp" then
        local ping, pong = channel.new(), channel.new()
        coroutine.spawn(function() for _ = 1, n do pong:send(ping:receive()) end end)
        for i = 1, n do ping:send(i); pong:receive() end
        return "pp"
    end
    if role == "lib" then
        -- Library calls as business code writes them, each a global read
        -- and a field read (`string.format`): four per round.
        local t = {}
        for i = 1, n do
            t[#t + 1] = string.format("%d", math.floor(i / 2))
            table.insert(t, string.sub("abcdef", 2, 3))
            if #t > 64 then t = {} end
        end
        return "lib"
    end
    if role == "pc" then
        -- A protected call of a function that returns its argument.
        local f = function(x) return x end
        for i = 1, n do pcall(f, i) end
        return "pc"
    end
    if role == "ry" then
        local co = coroutine.create(function() while true do coroutine.yield() end end)
        for _ = 1, n do coroutine.resume(co) end
        return "ry"
    end
    if role == "blk" then
        local ch = channel.new()
        coroutine.spawn(function() for i = 1, n do ch:send(i) end end)
        for _ = 1, n do ch:receive() end
        return "blk"
    end
    if role == "ow" then
        local w = 64
        local s = process.spawn("script:main", "warren:default", "sink", tostring(n), tostring(w), process.pid())
        local inbox = process.inbox()
        inbox:receive()
        for i = 1, n do
            process.send(s, "m", { i = i })
            if i % w == 0 then inbox:receive() end
        end
        if n % w ~= 0 then inbox:receive() end
        return "ow"
    end
    if role == "rr" or role == "xrr" then
        -- xrr: a first child stays on this worker, so the echo is placed on
        -- the other one (see placement.rs) and every message crosses
        -- workers: H.send out, a host item in.
        local idle = role == "xrr" and process.spawn("script:main", "warren:default", "idle")
        local echo = process.spawn("script:main", "warren:default", "echo", tostring(n))
        local inbox = process.inbox()
        for i = 1, n do
            process.send(echo, "ping", i)
            inbox:receive()
        end
        if idle then process.send(idle, "stop") end
        return role
    end
    if role == "echo" then
        local inbox = process.inbox()
        for _ = 1, n do
            local m = inbox:receive()
            process.send(m:from(), "pong", m:payload():data())
        end
        return
    end
    if role == "spawn" then
        local kids = {}
        for i = 1, n do kids[i] = process.spawn("script:main", "warren:default", "idle") end
        require("time").sleep("0s")
        for i = 1, n do process.send(kids[i], "stop") end
        return "spawn"
    end
    if role == "idle" then process.inbox():receive() return end
end
