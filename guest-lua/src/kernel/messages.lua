-- Warren's Lua kernel: payload copies, send, the inbox, events, listen, options and names.
-- One chunk with the other parts (see kernel.rs): it uses what earlier parts declare.

-- A copy of a payload for a process in this VM: the same data model and
-- the same errors as the host's conversion. A table goes to the native copy
-- first (H.copy, copy.rs), which only ever copies or says "don't know";
-- this Lua copy decides the rest and builds every error.
local COPY_FAIL = function() end
local MAX_DEPTH = H.max_depth -- the host conversion's (convert.rs), shared with copy.rs
local copy_table
local function too_big()
    return COPY_FAIL, s_format("message payloads exceed max_message_bytes (%d)", MAX_MESSAGE_BYTES), ""
end

local function segment(k)
    local t = type(k)
    if t == "string" then
        if #k > 64 then return "[" .. quoted_name(k) .. "]" end
        if k:match("^[%a_][%w_]*$") then return "." .. k end
        return "[" .. s_format("%q", k) .. "]"
    end
    return "[" .. describe_cut(k) .. "]"
end

local function copy_value(v, depth, open)
    local t = type(v)
    if t == "table" then return copy_table(v, depth, open) end
    if t == "string" then
        SEND.bytes = SEND.bytes + 5 + #v
    elseif t == "number" then
        SEND.bytes = SEND.bytes + 9
    elseif t == "boolean" or t == "nil" then
        SEND.bytes = SEND.bytes + 1
    else -- function, thread, userdata, channel: whatever `type` names
        return COPY_FAIL, t .. " cannot be sent", ""
    end
    -- every value, not only a string, may be the one that passes the limit
    if SEND.bytes > MAX_MESSAGE_BYTES then return too_big() end
    return v
end

copy_table = function(t, depth, open)
    if open[t] then return COPY_FAIL, "cycle: the table contains itself", "" end
    if depth >= MAX_DEPTH then
        return COPY_FAIL, "nesting deeper than " .. MAX_DEPTH .. " levels cannot be sent", ""
    end
    local mt = raw_getmetatable(t)
    -- A runtime object's tag is a string or a number (as H.copy and the
    -- conversion read it); any other value is the process's own data,
    -- never joined into a message here (a table's __concat would run).
    local tag = mt and rawget(mt, "__warren")
    local tt = type(tag)
    if tt == "string" or tt == "number" then return COPY_FAIL, tag .. " cannot be sent", "" end
    open[t] = true
    SEND.bytes = SEND.bytes + 5
    if SEND.bytes > MAX_MESSAGE_BYTES then return too_big() end
    -- Each table read once per reference to it, empty slots too (a sparse
    -- table of 2M slots shared 2,000 times): as convert.rs bounds it.
    SEND.slots = SEND.slots + H.table_slots(t)
    if SEND.slots > MAX_MESSAGE_BYTES * 16 then
        return COPY_FAIL, "the value's tables have more than " .. MAX_MESSAGE_BYTES * 16
            .. " slots to read (empty ones too, each table once per reference to it)", ""
    end
    local out = {}
    -- Keys as wire_size counts them: a string 5 + its length, a boolean 1,
    -- a number 9, but 1..#t free when every key is one of them (an array),
    -- which is known at the end.
    local len, nindex, other = rawlen(t), 0, false
    for k, v in next, t do
        local kt = type(k)
        if kt == "string" then
            SEND.bytes, other = SEND.bytes + 5 + #k, true
        elseif kt == "boolean" then
            SEND.bytes, other = SEND.bytes + 1, true
        elseif kt == "number" then
            if math_type(k) == "integer" and k >= 1 and k <= len then
                nindex = nindex + 1
            else
                SEND.bytes, other = SEND.bytes + 9, true
            end
        else
            return COPY_FAIL, "a " .. kt .. " key cannot be sent", ""
        end
        if SEND.bytes > MAX_MESSAGE_BYTES then return too_big() end
        local c, reason, path = copy_value(v, depth + 1, open)
        if c == COPY_FAIL then return COPY_FAIL, reason, segment(k) .. path end
        out[k] = c
    end
    if other or nindex ~= len then
        SEND.bytes = SEND.bytes + 9 * nindex
        if SEND.bytes > MAX_MESSAGE_BYTES then return too_big() end
    end
    open[t] = nil
    if mt and rawequal(mt, ErrMT) then setmetatable(out, ErrMT) end -- an error stays one
    return out
end

-- Tables being copied (cycle detection); copying runs no user code, so one
-- set serves every copy. A failed copy clears it, and so does the next
-- copy: one unwound by a memory error (which ends its process) left its
-- tables in it, seen as cycles; weak keys, so that they do not keep what
-- they hold alive, counted against no process, meanwhile.
local OPEN = setmetatable({}, { __mode = "k" })
local function clear_open()
    for k in next, OPEN do OPEN[k] = nil end
end
local function copy_failed(prefix, reason, path)
    clear_open()
    return COPY_FAIL, prefix .. path .. ": " .. reason
end

local function copy_one(v, prefix)
    if type(v) ~= "table" then
        local c, reason = copy_value(v, 0, OPEN)
        if c == COPY_FAIL then return copy_failed(prefix, reason, "") end
        return c
    end
    local c, bytes = H.copy(v, SEND.bytes, MAX_MESSAGE_BYTES, ErrMT)
    if c ~= nil then
        SEND.bytes = bytes
        return c
    end
    if next(OPEN) ~= nil then clear_open() end
    local c2, reason, path = copy_table(v, 0, OPEN)
    if c2 == COPY_FAIL then return copy_failed(prefix, reason, path) end
    return c2
end

local function copy_many(n, ...)
    local out = { ... }
    for i = 1, n do
        local c, reason = copy_one(out[i], "payload[" .. i .. "]")
        if c == COPY_FAIL then return COPY_FAIL, reason end
        out[i] = c
    end
    return out
end

-- process.upgrade(id, ...): the new code gets its arguments as a spawn's
-- child does, copied as data under max_message_bytes: a live function or
-- a table with metamethods, handed over as it was, ran the caller's code
-- with the new entry's modules and grants (any entry's, its `fs` volumes
-- and secrets) as soon as the new code touched it.
function process.upgrade(id, ...)
    if id ~= nil then check_str(id, "process.upgrade: entry id", 2) end
    local p = me()
    if p.main.entry.func then
        return nil, mkerr("INVALID", "process.upgrade: a function call runs its own entry to the end")
    end
    -- An upgrade waits for the kernel: from a sort comparator it raised
    -- "attempt to yield across a C-call boundary" and left itself pending.
    if cannot_wait(current) then return nil, mkerr("INVALID", "process.upgrade: " .. CANNOT_WAIT) end
    local entry, kind, msg = H.entry(id or p.main.entry.id, p.id)
    if not entry then return nil, mkerr(kind, msg) end
    local args = t_pack(...)
    SEND.bytes, SEND.slots = 0, 0
    for i = 1, args.n do
        local c, reason = copy_one(args[i], "argument[" .. i .. "]")
        if c == COPY_FAIL then return nil, mkerr("INVALID", "process.upgrade: " .. reason) end
        args[i] = c
    end
    -- The entry comes from the host and waits in kernel state: the yielded
    -- token only says "now" (a forged one finds nothing pending).
    UPGRADES[p] = { entry, args }
    co_yield(UPGRADE)
    UPGRADES[p] = nil
end

local function send_local(from, target, topic, n, ...)
    if s_byte(topic, 1) == 64 or #topic > H.max_topic_bytes then -- "@", or long
        return nil, mkerr("INVALID", H.topic_refused(topic))
    end
    if n > H.max_payloads then -- the core's rule for any other send
        return nil, mkerr("INVALID", s_format("a message of %d payloads: at most %d", n, H.max_payloads))
    end
    SEND.bytes, SEND.slots = 0, 0
    if n == 1 then
        local c, reason = copy_one((...), "payload")
        if c == COPY_FAIL then return nil, mkerr("INVALID", reason) end
        local ok, kind, msg, retryable = H.admit(target.id, SEND.bytes)
        if not ok then return nil, mkerr(kind, msg, retryable) end
        M.owe(target.id)
        on_msg1(target, topic, from.pid, c)
        M.owe(0)
        return true
    end
    local out, reason = copy_many(n, ...)
    if out == COPY_FAIL then return nil, mkerr("INVALID", reason) end
    local ok, kind, msg, retryable = H.admit(target.id, SEND.bytes)
    if not ok then return nil, mkerr(kind, msg, retryable) end
    M.owe(target.id)
    on_msg(target, topic, from.pid, t_unpack(out, 1, n))
    M.owe(0)
    return true
end

-- process.send is C (machine/send.rs `send`): one payload to a pid (the
-- usual case) in one C call, which answers as H.send_plain for another
-- VM's. What that leaves (a name, a reserved topic, a payload or a
-- refusal to explain, bad arguments) comes here, called from that C
-- function: its errors are raised one level further up, at the caller of
-- process.send.
local function send_slow(dest, topic, ...)
    if type(dest) ~= "string" then check_str(dest, "process.send: destination", 3) end
    if type(topic) ~= "string" then check_str(topic, "process.send: topic", 3) end
    local cr = current
    if not cr then error("not inside a process", 3) end
    local p = cr.p
    -- A longer string is no pid text (bypid's keys): not hashed.
    local target = #dest <= H.pid_text_max and bypid[dest]
    if not target and s_byte(dest, 1) ~= 60 then -- a name: resolve it first, so every send to one process takes one path
        local pid = H.lookup(p.id, dest)
        target = pid and bypid[pid]
    end
    -- Behind items for the target still waiting in the host (messages
    -- sent before it started), a send goes through the host too.
    if target and not H.items_waiting(target.id) then
        return send_local(p, target, topic, select("#", ...), ...)
    end
    return ok_or_err(h_send(p.id, dest, topic, ...))
end
M.bind_send(send_slow)
process.send = M.process_send

-- process.inbox() and process.events(): one C call for the usual case
-- (machine/mailbox.rs); this Lua when the process has messages waiting
-- for its first inbox, or outside a process (me() raises).
function process.inbox()
    local proxy = M.inbox1()
    if proxy then return proxy end
    local p = me()
    local s = p.inbox
    if s then return s.proxy end
    s = inbox_state(p) -- subscribes: what waited comes in, in order
    local q = p.pending
    if q then
        p.pending = nil
        while true do
            local m = qpop(q)
            if m == nil then break end
            deliver(s, m)
        end
    end
    return s.proxy
end
function process.events()
    return M.events1() or host_chan(me(), "events").proxy
end

-- `opts.message = true` delivers message objects (as the inbox does)
-- instead of bare payloads; the first listen of a topic decides.
function process.listen(topic, opts)
    check_str(topic, "process.listen: topic", 2)
    if s_byte(topic, 1) == 64 or #topic > H.max_topic_bytes then error("process.listen: " .. H.topic_refused(topic), 2) end
    if opts ~= nil and type(opts) ~= "table" then error("process.listen: options must be a table", 2) end
    local p = me()
    p.listens = p.listens or {}
    local s = p.listens[topic]
    if not s then
        s = chan_state(0, true)
        s.mb = p
        s.msgs = opts ~= nil and rawget(opts, "message") == true or nil
        p.listens[topic] = s
        local q = p.pending -- messages of this topic waiting for a subscriber
        if q then
            local keep = qnew()
            while true do
                local m = qpop(q)
                if m == nil then break end
                if rawget(m, 1) ~= topic then
                    qpush(keep, m)
                elseif s.msgs then
                    deliver(s, m)
                elseif rawget(m, 3) == 1 then
                    deliver(s, rawget(m, 4))
                else
                    local list = {}
                    for i = 1, rawget(m, 3) do list[i] = rawget(m, 3 + i) end
                    deliver(s, list)
                end
            end
            p.pending = qlen(keep) > 0 and keep or nil
        end
    end
    return s.proxy
end

function process.unlisten(ch)
    local p = me()
    local s = state_of(ch, 2)
    if p.listens then
        for topic, ls in pairs(p.listens) do
            if ls == s then
                p.listens[topic] = nil
                -- What it still buffers no longer counts against the mailbox.
                note_taken(p, ls.buf and qlen(ls.buf) or 0)
                ls.mb = nil
            end
        end
    end
    return true
end

local function pid_call(fn, name)
    return function(pid, ...)
        check_str(pid, name .. ": pid", 2)
        return ok_or_err(fn(me().id, pid, ...))
    end
end
process.link = pid_call(H.link, "process.link")
process.unlink = pid_call(H.unlink, "process.unlink")
process.monitor = pid_call(H.monitor, "process.monitor")
process.unmonitor = pid_call(H.unmonitor, "process.unmonitor")
process.cancel = pid_call(H.cancel, "process.cancel")
process.terminate = pid_call(H.terminate, "process.terminate")

-- An unknown option or a value of the wrong type is `false, err`, as in Wippy.
function process.set_options(opts)
    if type(opts) ~= "table" then error("process.set_options: expected a table", 2) end
    for k, v in next, opts do
        if k ~= "trap_links" then
            return false, mkerr("INVALID", "process.set_options: unknown option " .. describe_cut(k))
        end
        if type(v) ~= "boolean" then
            return false, mkerr("INVALID", "process.set_options: trap_links must be a boolean")
        end
    end
    local trap = rawget(opts, "trap_links")
    if trap ~= nil then H.trap(me().id, trap) end
    return true
end

function process.get_options()
    return { trap_links = H.trap(me().id) }
end

do
-- Name scopes (Wippy's constants). Names are node-local: the cluster
-- scopes are refused until names span machines.
local SCOPES = { LOCAL = 0, EVENTUAL = 1, CONSISTENT = 2, STRONG = 3 }
for k, v in next, SCOPES do process.registry[k] = v end
local function local_scope(scope, what)
    if scope == nil or scope == SCOPES.LOCAL then return true end
    local name = "unknown"
    for k, v in next, SCOPES do if v == scope then name = k end end
    return nil, mkerr("INVALID", s_format(
        "%s: scope %s (%s) needs a cluster; names on Warren are node-local (process.registry.LOCAL)",
        what, describe_cut(scope), name))
end

-- Who may unregister a name (its holder, or the process that registered
-- it for another pid) is the core's to know: the kernel keeps no record.

function process.registry.register(name, pid, scope)
    check_str(name, "process.registry.register: name", 2)
    if pid ~= nil then check_str(pid, "process.registry.register: pid", 2) end
    local okscope, err = local_scope(scope, "process.registry.register")
    if not okscope then return nil, err end
    local p = me()
    local ok, kind, msg, retryable = H.register(p.id, name, pid or p.pid)
    if not ok then return nil, mkerr(kind, msg, retryable) end
    return true
end

function process.registry.lookup(name)
    check_str(name, "process.registry.lookup: name", 2)
    local pid, kind, msg = H.lookup(me().id, name)
    if pid then return pid end
    if kind then return nil, mkerr(kind, msg) end
    return nil, mkerr("NOT_FOUND", "no process is registered as " .. quoted_name(name))
end

-- true when released; false when `name` is neither held by this process
-- nor one it registered for another pid.
function process.registry.unregister(name, scope)
    check_str(name, "process.registry.unregister: name", 2)
    local okscope, err = local_scope(scope, "process.registry.unregister")
    if not okscope then return nil, err end
    return H.unregister(me().id, name)
end
end

