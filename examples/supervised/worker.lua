-- Squares numbers sent on topic "job" as {n = n}; crashes on every
-- `crash_every`-th job so the supervisor has something to do.
return function(crash_every)
    process.registry.register("worker")
    local inbox, events = process.inbox(), process.events()
    local handled = 0
    while true do
        local r = channel.select({ inbox:case_receive(), events:case_receive() })
        if r.channel == events then
            if r.value.kind == process.event.CANCEL then return "worker stopped" end
        else
            handled = handled + 1
            local job = r.value:payload():data()
            if handled % crash_every == 0 then
                error(("simulated crash on job %d"):format(job.n))
            end
            process.send(r.value:from(), "result", { n = job.n, square = job.n * job.n })
        end
    end
end
