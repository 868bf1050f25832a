-- Warren's Lua kernel: the `time` module.
-- One chunk with the other parts (see kernel.rs): it uses what earlier parts declare.

---------------------------------------------------------------------------
-- time
---------------------------------------------------------------------------
local time
do
local DurMethods, TimeMethods = {}, {}
local DurMT = { __index = DurMethods, __metatable = false }
local TimeMT = { __index = TimeMethods, __metatable = false }
local function dur(ns) return setmetatable({ ns = ns }, DurMT) end
local function tm(ns) return setmetatable({ ns = ns }, TimeMT) end
-- The nanoseconds of a duration or time value; raises for anything else
-- (read raw and checked: a forged `ns` could carry metamethods).
local function ns_of(v, level)
    local ns = type(v) == "table" and rawget(v, "ns")
    if math_type(ns) ~= "integer" then error("expected a duration or time value, got " .. type(v), level + 1) end
    return ns
end
DurMT.__tostring = function(d) return H.format_duration(ns_of(d, 2)) end
DurMT.__eq = function(a, b)
    local x, y = type(a) == "table" and rawget(a, "ns"), type(b) == "table" and rawget(b, "ns")
    return math_type(x) == "integer" and math_type(y) == "integer" and x == y
end
DurMT.__lt = function(a, b) return ns_of(a, 2) < ns_of(b, 2) end
DurMT.__le = function(a, b) return ns_of(a, 2) <= ns_of(b, 2) end
function DurMethods:nanoseconds() return ns_of(self, 2) end
function DurMethods:milliseconds() return ns_of(self, 2) // 1000000 end
function DurMethods:seconds() return ns_of(self, 2) / 1e9 end
function DurMethods:microseconds() return ns_of(self, 2) // 1000 end
function DurMethods:minutes() return ns_of(self, 2) / 6e10 end
function DurMethods:hours() return ns_of(self, 2) / 3.6e12 end

local to_ns
do -- (in a block: the chunk's main function is at Lua's 200 locals)
    -- Durations written as text, by their text: a process that sleeps or
    -- waits with the same "100ms" each time has it parsed once (the host
    -- call cost about 700 instructions). At most PARSED of at most
    -- PARSED_TEXT bytes, then emptied: the kernel's, counted to no process.
    local PARSED, PARSED_TEXT = 64, 32
    local parsed, count = {}, 0
    H.kernel_tables(parsed)
    function to_ns(d, level)
        local t = type(d)
        if t == "number" then
            if math_type(d) == "integer" then return d end
            if d ~= d or d >= 0x1p63 or d < -0x1p63 then error("invalid duration: " .. describe(d), level + 1) end
            return floor(d)
        elseif t == "string" then
            -- Only a short text is looked up: a long string's hash reads
            -- every byte, and 64 MiB of one held the worker 100 ms in C
            -- before the host refused its length.
            local short = #d <= PARSED_TEXT
            local ns = short and parsed[d]
            if ns then return ns end
            local err
            ns, err = H.parse_duration(d)
            if not ns then error(err, level + 1) end
            if short then
                if count >= PARSED then
                    for k in next, parsed do parsed[k] = nil end
                    count = 0
                end
                parsed[d], count = ns, count + 1
            end
            return ns
        end
        local ns = t == "table" and rawget(d, "ns")
        if math_type(ns) == "integer" then return ns end
        error("expected a duration (\"150ms\", nanoseconds, or a duration value), got " .. t, level + 1)
    end
end

TimeMT.__tostring = function(t) return H.format_time(ns_of(t, 2), "2006-01-02T15:04:05.999999999Z07:00") end
TimeMT.__eq = DurMT.__eq
TimeMT.__lt = DurMT.__lt
TimeMT.__le = DurMT.__le
function TimeMethods:unix() return ns_of(self, 2) // 1000000000 end
function TimeMethods:unix_nano() return ns_of(self, 2) end
function TimeMethods:before(other) return ns_of(self, 2) < ns_of(other, 2) end
function TimeMethods:after(other) return ns_of(self, 2) > ns_of(other, 2) end
function TimeMethods:equal(other) return ns_of(self, 2) == ns_of(other, 2) end
-- A time is nanoseconds since 1970 in 64 bits (the years 1677 to 2262):
-- `add` past them raises, where the integer would wrap to a wrong time;
-- `sub` saturates at the longest duration, as Go's Time.Sub does.
local MAX_NS, MIN_NS = math.maxinteger, math.mininteger
function TimeMethods:sub(other)
    local a, b = ns_of(self, 2), ns_of(other, 2)
    if b < 0 and a > MAX_NS + b then return dur(MAX_NS) end
    if b > 0 and a < MIN_NS + b then return dur(MIN_NS) end
    return dur(a - b)
end
function TimeMethods:add(d)
    local a, b = ns_of(self, 2), to_ns(d, 2)
    if (b > 0 and a > MAX_NS - b) or (b < 0 and a < MIN_NS - b) then
        error("time:add: the result is out of range (a time holds the years 1677 to 2262)", 2)
    end
    return tm(a + b)
end
function TimeMethods:format(layout)
    check_str(layout, "time:format: layout", 2)
    -- The longest layout taken (1 KiB): formatting runs in one host call,
    -- about 18 ms per MiB of layout (a 24 MiB one held the worker 400 ms).
    if #layout > 1024 then
        error(s_format("time:format: the layout is %d bytes, over the limit of 1024", #layout), 2)
    end
    return H.format_time(ns_of(self, 2), layout)
end
function TimeMethods:format_rfc3339() return H.format_time(ns_of(self, 2), "2006-01-02T15:04:05Z07:00") end

local next_timer = 0
local function arm(p, ns, fire)
    next_timer = next_timer + 1
    local id = next_timer
    lazy_table(p, "timers")[id] = fire
    M.timer(p.id, id, ns < 0 and 0 or ns)
    return id
end

time = {
    RFC3339 = "2006-01-02T15:04:05Z07:00",
    RFC3339NANO = "2006-01-02T15:04:05.999999999Z07:00",
    RFC822 = "02 Jan 06 15:04 MST", RFC822Z = "02 Jan 06 15:04 -0700",
    RFC850 = "Monday, 02-Jan-06 15:04:05 MST", RFC1123 = "Mon, 02 Jan 2006 15:04:05 MST",
    RFC1123Z = "Mon, 02 Jan 2006 15:04:05 -0700", DATE_TIME = "2006-01-02 15:04:05",
    DATE_ONLY = "2006-01-02", TIME_ONLY = "15:04:05", KITCHEN = "3:04PM",
    NANOSECOND = 1, MICROSECOND = 1000, MILLISECOND = 1000000, SECOND = 1000000000,
    MINUTE = 60000000000, HOUR = 3600000000000,
    JANUARY = 1, FEBRUARY = 2, MARCH = 3, APRIL = 4, MAY = 5, JUNE = 6, JULY = 7,
    AUGUST = 8, SEPTEMBER = 9, OCTOBER = 10, NOVEMBER = 11, DECEMBER = 12,
    SUNDAY = 0, MONDAY = 1, TUESDAY = 2, WEDNESDAY = 3, THURSDAY = 4, FRIDAY = 5, SATURDAY = 6,
}

-- time.unix(sec, nsec): a time value from a Unix timestamp. nsec outside
-- [0, 1e9) carries into the seconds, as Go's time.Unix; a time is int64
-- nanoseconds (1677-09-21 to 2262-04-11), and one outside that is refused
-- rather than wrapped (time.unix(math.maxinteger) was a time in 1969).
function time.unix(sec, nsec)
    if math_type(sec) ~= "integer" then error("time.unix: seconds must be an integer", 2) end
    if nsec ~= nil and math_type(nsec) ~= "integer" then error("time.unix: nanoseconds must be an integer", 2) end
    nsec = nsec or 0
    local top, low = MAX_NS // 1000000000, MIN_NS // 1000000000 -- 9223372036, -9223372037
    local s, ns = nsec // 1000000000, nsec % 1000000000
    local at = (sec <= top and sec >= low) and sec + s or nil -- no overflow: |s| < 1e10
    if not at or at > top or at < low
        or (at == top and ns > MAX_NS % 1000000000)
        or (at == low and ns < MIN_NS % 1000000000) then
        error(s_format("time.unix: %d s and %d ns is outside the years 1677 to 2262", sec, nsec), 2)
    end
    if at == low then return tm((at + 1) * 1000000000 + (ns - 1000000000)) end
    return tm(at * 1000000000 + ns)
end

function time.now() return tm(H.now()) end

-- Locations: fixed offsets east of UTC. Warren has no time-zone database:
-- localtz is UTC, and load_location knows only "UTC" and "Local".
-- A location's name and offset live in HELD, keyed by its (empty) proxy,
-- where the measure counts them as the location's (a table of their own,
-- LOCS, was reached only through a stale stack slot: 200 zones named by
-- a MiB each were missed): time.utc is shared by every process, and a
-- field rawset on it changes nothing (it is also frozen below, with the
-- time module). A logger or a snapshot, also in HELD, is no location.
local LocMT
local function loc_of(t) return rawequal(raw_getmetatable(t), LocMT) and HELD[t] or nil end
LocMT = { __metatable = false, __warren = "location",
    __index = function(t, k)
        local l = loc_of(t)
        if k == "name" then return l and l[1] end
        if k == "offset" then return l and l[2] end
    end,
    __newindex = function() error("attempt to modify a location", 2) end,
    -- As frozen tables do: an iterator over its fields, never a table.
    __pairs = function(t)
        local l, i = loc_of(t) or {}, 0
        return function()
            i = i + 1
            if i == 1 then return "name", l[1] elseif i == 2 then return "offset", l[2] end
        end
    end }
local function location(name, offset)
    local t = setmetatable({}, LocMT)
    HELD[t] = { name, offset }
    return t
end
time.utc = location("UTC", 0)
time.localtz = location("Local", 0)
function time.fixed_zone(name, offset)
    check_str(name, "time.fixed_zone: name", 2)
    if math_type(offset) ~= "integer" or offset < -86400 or offset > 86400 then
        error("time.fixed_zone: offset must be an integer number of seconds within a day", 2)
    end
    return location(name, offset)
end
function time.load_location(name)
    if name == "UTC" or name == "" then return time.utc end
    if name == "Local" then return time.localtz end
    return nil, mkerr("NOT_FOUND", s_format("time.load_location: unknown time zone %s (only UTC and Local)", describe_cut(name)))
end
local function offset_of(loc, what)
    if loc == nil then return 0 end
    local l = loc_of(loc)
    if not l then error(what .. ": expected a location (time.utc, time.fixed_zone, ...)", 3) end
    return l[2]
end

-- time.parse(layout, value, loc?): Go's layouts; a value without a zone
-- is in `loc` (UTC by default).
function time.parse(layout, value, loc)
    check_str(layout, "time.parse: layout", 2)
    check_str(value, "time.parse: value", 2)
    local ns, err = H.parse_time(layout, value, offset_of(loc, "time.parse"))
    if not ns then return nil, mkerr("INVALID", err) end
    return tm(ns)
end

-- time.date(year, month, day, hour, min, sec, nsec, loc?), normalised as
-- Go's time.Date is (month 13 is January of the next year).
function time.date(y, mo, d, h, mi, s, ns, loc)
    local args = { y, mo, d, h or 0, mi or 0, s or 0, ns or 0 }
    for i = 1, 7 do
        if math_type(args[i]) ~= "integer" then error("time.date: argument " .. i .. " must be an integer", 2) end
    end
    local t, err = H.date(args[1], args[2], args[3], args[4], args[5], args[6], args[7], offset_of(loc, "time.date"))
    if not t then error("time.date: " .. err, 2) end
    return tm(t)
end
now_value = time.now
-- What the machine needs of what the kernel made since it was built (see
-- the time section for TimeMT). start: the machine starts a process with
-- it when the host's entry table for its program is made (H.entries) and
-- it has no context values.
M.bind(ErrMT, MsgMT, procs, mkerr, PayloadMT, payload_list, start, H.entries, TimeMT, bypid)
function time.parse_duration(s)
    check_str(s, "time.parse_duration: argument", 2)
    -- Durations are short; a huge one would be quoted whole in the error.
    if #s > 256 then
        return nil, mkerr("INVALID", s_format("time.parse_duration: %d bytes is longer than 256", #s))
    end
    local ns, err = H.parse_duration(s)
    if not ns then return nil, mkerr("INVALID", err) end
    return dur(ns)
end

-- A zero or negative duration for after, timer and ticker is `nil, err`
-- (INVALID), as in Wippy.
local function nonpositive(what, ns)
    return nil, mkerr("INVALID", s_format("%s: the duration must be positive, got %dns", what, ns))
end

do -- (in a block: the chunk's main function is at Lua's 200 locals)
    -- time.after's channel states by timer id, in `p.timers.after`, held
    -- weakly: a channel nothing can receive from any more (the usual
    -- select with a timeout that another case won) is collected, and its
    -- timer cancelled by a sweep, instead of both being kept until the
    -- timer fires (a loop receiving with a 30 s timeout held every
    -- channel it made for 30 s and ended at its memory limit after
    -- 300,000 rounds). The table is the process's own, and counted so.
    local WEAK_VALUES = { __mode = "v", __metatable = false }
    NOT_OWNED[WEAK_VALUES] = true
    -- A process's after-timers are swept once more than this many are
    -- armed, and then once more than twice as many as the sweep left.
    local AFTER_SWEEP = 64
    -- Every after-timer's fire (`handle` took it out of `p.timers`).
    local function after_fire(p, id)
        local timers = p.timers
        local states = timers and timers.after
        local s = states and states[id]
        if states then
            states[id] = nil
            timers.afters = timers.afters - 1
        end
        if s then deliver(s, tm(H.now())) end
    end
    NOT_OWNED[after_fire] = true
    -- Cancels the after-timers of `p` whose channels were collected, and
    -- sets when to sweep next.
    local function sweep(p, timers, states)
        local left = 0
        for id, fire in next, timers do
            if fire == after_fire then
                if states[id] == nil then
                    timers[id] = nil
                    M.cancel_timer(p.id, id)
                else
                    left = left + 1
                end
            end
        end
        timers.afters, timers.sweep = left, 2 * left + AFTER_SWEEP
    end
    function time.after(d)
        local ns = to_ns(d, 2)
        if ns <= 0 then return nonpositive("time.after", ns) end
        local p = me()
        local s = chan_state(1, true)
        local id = arm(p, ns, after_fire)
        local timers = p.timers
        local states = timers.after
        if not states then
            states = setmetatable({}, WEAK_VALUES)
            timers.after, timers.afters = states, 0
        end
        states[id] = s
        local n = timers.afters + 1
        timers.afters = n
        if n > (timers.sweep or AFTER_SWEEP) then sweep(p, timers, states) end
        return s.proxy
    end
end

function time.sleep(d)
    local ns = to_ns(d, 2)
    local p = me()
    local cr = current
    if cannot_wait(cr) then error(CANNOT_WAIT, 2) end
    arm(p, ns, function() wake(cr) end)
    block(cr, true)
end

local TimerMethods = {}
local TimerMT = { __index = TimerMethods, __metatable = false, __warren = "timer" }
local function timer_state(t, level)
    local st = TIMERS[t]
    if not st then error("expected a timer, got " .. type(t), level + 1) end
    return st
end

function time.timer(d)
    local ns = to_ns(d, 2)
    if ns <= 0 then return nonpositive("time.timer", ns) end
    local p = me()
    local s = chan_state(1, true)
    local t = setmetatable({}, TimerMT)
    local st = { p = p, s = s }
    TIMERS[t] = st
    local function fire() st.id = nil; deliver(s, tm(H.now())) end
    st.fire = fire
    st.id = arm(p, ns, fire)
    return t
end
function TimerMethods:channel() return timer_state(self, 2).s.proxy end
TimerMethods.response = TimerMethods.channel -- Wippy's name
function TimerMethods:stop()
    local st = timer_state(self, 2)
    st.paused = nil -- a stopped ticker is not re-armed by a receive
    local timers = st.p.timers
    local pending = st.id ~= nil and timers and timers[st.id] ~= nil or false
    if st.id and timers then timers[st.id] = nil end
    -- Nor is its entry kept in the host's heap until the deadline (a
    -- reset loop would grow it without bound).
    if pending then M.cancel_timer(st.p.id, st.id) end
    st.id = nil
    return pending
end
function TimerMethods:reset(d)
    local st = timer_state(self, 2)
    local ns = to_ns(d, 2)
    local pending = TimerMethods.stop(self)
    st.id = arm(st.p, ns, st.fire)
    return pending
end

-- A ticker whose last tick still waits unread arms nothing when it fires
-- (`paused`): the receive that takes that tick re-arms it (the machine's
-- try_recv calls resume_tick, bound below, for a state with a `tick`). A
-- ticker nobody reads then costs nothing; re-armed at every fire, one of
-- 1 ns kept a worker busy on nobody's account, and 6,000 of them starved
-- the process's neighbours.
function time.ticker(d)
    local ns = to_ns(d, 2)
    if ns <= 0 then return nonpositive("time.ticker", ns) end
    local p = me()
    local s = chan_state(1, true)
    local t = setmetatable({}, TimerMT)
    local st = { p = p, s = s, ns = ns }
    TIMERS[t] = st
    local function fire()
        st.id = nil
        if s.buf and qlen(s.buf) > 0 then
            st.paused = true
            return
        end
        deliver(s, tm(H.now()))
        st.id = arm(p, ns, st.fire)
    end
    st.fire = fire
    st.id = arm(p, ns, fire)
    s.tick = st
    return t
end

-- Re-arms ticker `st` if its last fire armed nothing; the machine's
-- try_recv calls it just before it takes a tick from a ticker's channel.
local function resume_tick(st)
    if st.paused then
        st.paused = nil
        st.id = arm(st.p, st.ns, st.fire)
    end
end
M.bind_select(CASE, CaseMT, resume_tick)
end

