-- Places one order with the inventory; fails (abnormal exit) if the stock
-- is short or the inventory does not answer in time.
local time = require("time")
local json = require("json")

return function(n, item, count)
    process.send("inventory", "take", { item = item, count = count })
    local r = channel.select({ process.inbox():case_receive(), time.after("2s"):case_receive() })
    if not r.value or not r.value.payload then
        return nil, errors.new({ message = "inventory timed out", kind = errors.TIMEOUT })
    end
    local answer = r.value:payload():data()
    if not answer.ok then
        return nil, errors.new({ message = ("order %d: only %d %s left"):format(n, answer.left, item), kind = errors.CONFLICT })
    end
    return ("order %d: %s"):format(n, json.encode({ item = item, count = count, left = answer.left }))
end
