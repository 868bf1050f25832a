-- The shop's coordinator: starts the inventory, runs a batch of orders
-- through order workers, and stops everything. Run with:
--   cargo run -- run examples/shop -x shop:main
local time = require("time")

local HOST = "shop:processes"

local M = {}

function M.main()
    local inventory = process.spawn_linked("shop.inventory:store", HOST, { apples = 5, pears = 2 })
    -- Wait until the inventory has registered its name.
    while not process.registry.lookup("inventory") do time.sleep("1ms") end

    local events = process.events()
    local orders = { { "apples", 2 }, { "pears", 1 }, { "apples", 4 }, { "pears", 1 } }
    for i, order in ipairs(orders) do
        process.spawn_monitored("shop.orders:worker", HOST, i, order[1], order[2])
    end
    local accepted, refused = 0, 0
    for _ = 1, #orders do
        local ev = events:receive()
        if ev.result.error then
            refused = refused + 1
            print("order refused: " .. ev.result.error:message())
        else
            accepted = accepted + 1
            print("order accepted: " .. ev.result.value)
        end
    end
    local stock = process.exec("shop.orders:report", HOST)
    print(("accepted %d, refused %d, stock left: %s"):format(accepted, refused, stock))
    process.send("inventory", "stop")
    -- (An integer returned by an `-x` entry would be the exit status.)
end

return M
