//! Tests of the vendored collector's patch that lets young collections
//! leave suspended threads untraversed once they have not changed
//! (`vendor/lua-src/WARREN.md`, `lgc.c`'s `warren_keep`): whatever reaches
//! a suspended coroutine's stack — its own locals made before it yielded,
//! values it is resumed with, values moved onto it by `lua_xmove` —
//! survives any number of young collections, and a coroutine that has
//! waited through many of them still finds its values whole. A value
//! freed while a stack still held it would read back wrong (or crash).

use mlua::{Function, Lua};

/// Runs `rounds` rounds over `n` coroutines in generational mode: each
/// round resumes every coroutine (every `idle_every`th only in the first
/// and last) with a new table (it keeps the last three it got, and a
/// table it made itself, on its stack), makes garbage for young
/// collections between resumes, and checks what each coroutine holds.
/// Answers the first mismatch, or "" when none.
fn churn(n: u32, rounds: u32, idle_every: u32) -> String {
    let lua = Lua::new();
    let run: Function = lua
        .load(
            r#"
            collectgarbage("generational")
            local n, rounds, idle_every = ...
            local function body(id)
                local own = { id = id, tag = "own" .. id }
                local a, b, c
                while true do
                    local got = coroutine.yield(own, a, b, c)
                    if got == nil then return end
                    a, b, c = got, a, b
                end
            end
            local cos = {}
            for i = 1, n do
                cos[i] = coroutine.create(body)
                coroutine.resume(cos[i], i)
            end
            -- What coroutine i holds, given the rounds its last three
            -- values came from (nil where it got none).
            local function check(i, own, rs, a, b, c)
                if own.tag ~= "own" .. i then return "own of " .. i end
                local got = { a, b, c }
                for k = 1, 3 do
                    local want, t = rs[k], got[k]
                    if want ~= nil and (t == nil or t.r ~= want or t.s ~= ("v" .. i .. ":" .. want)) then
                        return ("coroutine %d, value %d (round %s)"):format(i, k, tostring(want))
                    end
                end
            end
            -- An idle coroutine is resumed in the first and the last round
            -- only, and waits through every collection between.
            for r = 1, rounds do
                for i = 1, n do
                    local idle = i % idle_every == 0
                    if not idle or r == 1 or r == rounds then
                        local ok, own, a, b, c = coroutine.resume(cos[i], { r = r, s = "v" .. i .. ":" .. r })
                        if not ok then return "resume failed: " .. tostring(own) end
                        local rs = idle and { r, r > 1 and 1 or nil } or { r, r > 1 and r - 1 or nil, r > 2 and r - 2 or nil }
                        local bad = check(i, own, rs, a, b, c)
                        if bad then return bad end
                    end
                    for _ = 1, 20 do local _ = { i, r, {} } end -- garbage
                end
            end
            for i = 1, n do coroutine.resume(cos[i], nil) end
            return ""
            "#,
        )
        .into_function()
        .expect("chunk");
    run.call((n, rounds, idle_every)).expect("runs")
}

#[test]
fn suspended_coroutines_keep_what_they_hold_through_young_collections() {
    assert_eq!(churn(200, 60, 7), "");
}

#[test]
fn coroutines_left_waiting_for_many_collections_hold_their_values() {
    // Every coroutine is resumed in the first and last rounds only: old
    // and unchanged for most of the run, holding the first round's table.
    assert_eq!(churn(300, 40, 1), "");
}
