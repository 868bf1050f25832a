-- A key-value cache registered as "cache": "put" {key, value}; "get" {key}
-- answered on topic "value"; stops on CANCEL.
return function()
    process.registry.register("cache")
    local store = {}
    local inbox, events = process.inbox(), process.events()
    while true do
        local r = channel.select({ inbox:case_receive(), events:case_receive() })
        if r.channel == events then
            if r.value.kind == process.event.CANCEL then return "cache closed" end
        else
            local msg = r.value
            local req = msg:payload():data()
            if msg:topic() == "put" then
                store[req.key] = req.value
            elseif msg:topic() == "get" then
                process.send(msg:from(), "value", { key = req.key, value = store[req.key] })
            end
        end
    end
end
