-- Sends jobs to the "worker" service, retrying across its crashes, stores
-- results in the "cache" service, prints the services' status, then stops
-- the application (services.stop cascades to everything that needs the cache).
local time = require("time")
local services = require("services")

local function run_job(n)
    local inbox = process.inbox()
    while true do
        if process.send("worker", "job", { n = n }) then
            local r = channel.select({ inbox:case_receive(), time.after("300ms"):case_receive() })
            if r.channel == inbox then return r.value:payload():data().square end
            print(("job %d: no answer (the worker crashed?), retrying"):format(n))
        else
            time.sleep("20ms") -- the worker is restarting and not registered yet
        end
    end
end

return function(jobs)
    for n = 1, jobs do
        process.send("cache", "put", { key = n, value = run_job(n) })
    end
    process.send("cache", "get", { key = jobs })
    local last = process.inbox():receive():payload():data()
    print(("all %d jobs done; cache[%d] = %d"):format(jobs, jobs, last.value))
    for _, s in ipairs(services.list()) do
        print(("service %-16s %-8s restarts=%d"):format(s.id, s.state, s.restarts))
    end
    assert(services.stop("sup:cache"))
    local events = process.events()
    while true do
        local ev = events:receive()
        if ev.kind == process.event.CANCEL then return "coordinator done" end
    end
end
