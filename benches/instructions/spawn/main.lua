-- spawnq: spawns n monitored processes that end at once, then takes their
-- n exit events, so every child has started and ended before the count
-- ends (the runtime stops with its main process). The children's starts
-- queue behind the spawner, which runs to its first wait (see
-- _index.yaml).
-- spawnw: the same, each child waiting on its inbox (the spawn bench's
-- "spawn until it waits on its inbox") until a message ends it.
local M = {}
function M.spawnw(n)
    local kids = {}
    for i = 1, n do kids[i] = assert(process.spawn_monitored("bench:main", "bench:procs", "wait")) end
    require("time").sleep("0s") -- every child starts and waits
    for i = 1, n do process.send(kids[i], "stop") end
    local events = process.events()
    for _ = 1, n do events:receive() end
    return "spawnw"
end
function M.main(role, n)
    if role == "quit" then return end
    if role == "wait" then process.inbox():receive() return end
    n = tonumber(n) or 1000
    if role == "spawnw" then return M.spawnw(n) end
    for _ = 1, n do assert(process.spawn_monitored("bench:main", "bench:procs", "quit")) end
    local events = process.events()
    for _ = 1, n do events:receive() end
    return "spawnq"
end
return M
