-- A pool of worker coroutines fed through a buffered channel, with results
-- collected under a select timeout. Run with:
--   cargo run -- run examples/worker-pool.lua
local time = require("time")

local WORKERS, JOBS = 4, 20

return function()
    local jobs = channel.new(8)
    local results = channel.new(JOBS)
    for w = 1, WORKERS do
        coroutine.spawn(function()
            while true do
                local job, ok = jobs:receive()
                if not ok then return end
                time.sleep(("%dms"):format(job % 3 + 1)) -- pretend to work
                results:send({ worker = w, job = job, square = job * job })
            end
        end)
    end
    coroutine.spawn(function()
        for j = 1, JOBS do jobs:send(j) end
        jobs:close()
    end)

    local total, done = 0, 0
    local deadline = time.after("5s")
    while done < JOBS do
        local r = channel.select({ results:case_receive(), deadline:case_receive() })
        if r.channel == deadline then
            return nil, errors.new({ message = ("timed out with %d of %d jobs"):format(done, JOBS), kind = errors.TIMEOUT })
        end
        done = done + 1
        total = total + r.value.square
    end
    print(("%d jobs done by %d workers, sum of squares %d"):format(done, WORKERS, total))
    return total
end
