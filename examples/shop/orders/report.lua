-- Asks the inventory for its stock and returns it.
return function()
    process.send("inventory", "report")
    return process.inbox():receive():payload():data()
end
