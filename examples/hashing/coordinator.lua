-- Fans blocks of bytes out to a pool of WebAssembly hashers, collects the
-- digests under a select timeout, checks each one against the same hash
-- computed in Lua, and stops the pool. A worker's crash arrives as an EXIT
-- event on the same select.
local time = require("time")

local HOST = "hashing:processes"
local WORKERS, JOBS, ROUNDS = 4, 40, 3

-- 64-bit FNV-1a, as the hasher computes it (Lua integers wrap the same way).
local function fnv1a(data, rounds)
    local h = -3750763034362895579 -- 0xcbf29ce484222325
    for _ = 1, rounds do
        for i = 1, #data do
            h = (h ~ data:byte(i)) * 0x100000001b3
        end
    end
    return h
end

local function block(n)
    local parts = {}
    for i = 1, 64 do parts[i] = string.char((n * 31 + i * 7) % 256) end
    return table.concat(parts)
end

return function()
    local workers = {}
    for w = 1, WORKERS do
        workers[w] = assert(process.spawn_monitored("hashing:hasher", HOST, ROUNDS))
    end
    local sent = {}
    for j = 1, JOBS do
        sent[j] = block(j)
        process.send(workers[(j - 1) % WORKERS + 1], "hash", sent[j])
    end

    local inbox, events = process.inbox(), process.events()
    local deadline = time.after("10s")
    local expected = {}
    for j = 1, JOBS do
        local d = fnv1a(sent[j], ROUNDS)
        expected[d] = (expected[d] or 0) + 1
    end
    local done = 0
    while done < JOBS do
        local r = channel.select({
            inbox:case_receive(), events:case_receive(), deadline:case_receive(),
        })
        if r.channel == deadline then
            return nil, errors.new({ message = ("timed out with %d of %d digests"):format(done, JOBS), kind = errors.TIMEOUT })
        elseif r.channel == events then
            return nil, errors.new("worker " .. r.value.from .. " stopped early: " .. tostring(r.value.result.error))
        end
        local digest = r.value:payload():data()
        if not expected[digest] then
            return nil, errors.new(("digest %d from %s matches no block"):format(digest, r.value:from()))
        end
        expected[digest] = expected[digest] - 1
        if expected[digest] == 0 then expected[digest] = nil end
        done = done + 1
    end

    local handled = 0
    for _, w in ipairs(workers) do process.send(w, "stop") end
    for _ = 1, WORKERS do
        local ev = events:receive()
        handled = handled + ev.result.value
    end
    print(("%d blocks hashed by %d WebAssembly workers, every digest matches Lua's"):format(handled, WORKERS))
end
