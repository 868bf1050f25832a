-- A stateful inventory registered as "inventory". Requests arrive on topic
-- "take" as {item, count, reply_to}; answers go back on topic "taken".
local function serve(stock)
    process.registry.register("inventory")
    local inbox = process.inbox()
    while true do
        local msg = inbox:receive()
        local topic = msg:topic()
        if topic == "stop" then return "closed" end
        local req = msg:payload():data()
        if topic == "take" then
            local have = stock[req.item] or 0
            if have >= req.count then
                stock[req.item] = have - req.count
                process.send(msg:from(), "taken", { ok = true, left = stock[req.item] })
            else
                process.send(msg:from(), "taken", { ok = false, left = have })
            end
        elseif topic == "report" then
            local parts = {}
            for item, n in pairs(stock) do parts[#parts + 1] = item .. "=" .. n end
            table.sort(parts)
            process.send(msg:from(), "report", table.concat(parts, ","))
        end
    end
end

return { serve = serve }
