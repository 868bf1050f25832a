-- spawnq: spawns n monitored processes that end at once, then takes their
-- n exit events, so every child has started and ended before the count
-- ends (the runtime stops with its main process). The children's starts
-- queue behind the spawner, which runs to its first wait (see
-- _index.yaml).
local M = {}
function M.main(role, n)
    if role == "quit" then return end
    n = tonumber(n) or 1000
    for _ = 1, n do assert(process.spawn_monitored("bench:main", "bench:procs", "quit")) end
    local events = process.events()
    for _ = 1, n do events:receive() end
    return "spawnq"
end
return M
