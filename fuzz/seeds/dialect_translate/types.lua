type Job = {id: integer, tag?: string}
type S = "a" | "b"
local function f<T: Job>(q: {T}): T?, string?
    return q[1] :: T, nil
end
local v = (f({}) as Job)!
(print)(v)
