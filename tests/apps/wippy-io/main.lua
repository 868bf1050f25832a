-- app:main: a command-line program (run with `-x app:main` on the terminal
-- host) that configures itself from environment variables, writes a report
-- into its volume, has functions digest and sign it, and checks the small
-- data modules. It prints one summary line per part on stdout.
local io = require("io")
local fs = require("fs")
local env = require("env")
local funcs = require("funcs")
local json = require("json")
local time = require("time")
local logger = require("logger")
local base64 = require("base64")
local hash = require("hash")
local uuid = require("uuid")
local crypto = require("crypto")

local NS_URL = "6ba7b811-9dad-11d1-80b4-00c04fd430c8"

local ITEMS = {
    { id = 1, name = "apple" },
    { id = 2, name = "pear" },
    { id = 3, name = "plum" },
}

local function kind_of(err)
    if err then return err:kind() end
    return "none"
end

---------------------------------------------------------------------------
-- env
---------------------------------------------------------------------------
local function configure()
    -- Get with fallback
    local port = env.get("PORT") or "8080"
    local log_level = env.get("LOG_LEVEL") or "info"

    local mode = env.get("APP_MODE")
    if not mode then
        return nil, errors.new({ message = "APP_MODE not configured", kind = errors.INVALID })
    end

    local api_host, err = env.get("PUBLIC_API_HOST")
    if err then return nil, err end

    -- A variable's default until something sets it
    local before, before_err = env.get("GREETING")
    if before_err then return nil, before_err end
    local _, set_err = env.set("GREETING", "hello from memory")
    if set_err then return nil, set_err end
    local greeting, greeting_err = env.get("GREETING")
    if greeting_err then return nil, greeting_err end

    -- Read-only variables refuse writes
    local _, readonly_err = env.set("APP_MODE", "development")

    -- A private variable, by entry id
    local key, key_err = env.get("app:signing_key")
    if key_err then return nil, key_err end

    -- Log configuration (be careful not to log secrets)
    local vars, all_err = env.get_all()
    if all_err then return nil, all_err end
    local names = {}
    for name, value in pairs(vars) do
        if not name:match("SECRET") and not name:match("KEY") and not name:match("key") then
            logger.debug("env", { [name] = value })
        end
        names[#names + 1] = name
    end
    table.sort(names)

    -- Check required variables
    local required = { "APP_MODE", "PORT", "GREETING" }
    for _, name in ipairs(required) do
        if not vars[name] then
            return nil, errors.new({ message = "Missing required env var: " .. name, kind = errors.INVALID })
        end
    end

    io.print(string.format(
        "env mode=%s port=%s log_level=%s api=%s greeting=%s->%s key=%d readonly=%s vars=%s",
        mode, port, log_level, api_host, before, greeting, #key, kind_of(readonly_err),
        table.concat(names, ",")))
    return { mode = mode, port = port }
end

---------------------------------------------------------------------------
-- fs
---------------------------------------------------------------------------
local function store(config)
    local vol, err = fs.get("app:storage")
    if err then
        return nil, err
    end

    -- Create directories (mkdir does not create parents)
    for _, dir in ipairs({ "/reports", "/logs", "/archive" }) do
        local exists, exists_err = vol:exists(dir)
        if exists_err then return nil, exists_err end
        if not exists then
            local _, mkdir_err = vol:mkdir(dir)
            if mkdir_err then return nil, mkdir_err end
        end
    end
    local _, again_err = vol:mkdir("/reports")

    -- Overwrite (default)
    local encoded, encode_err = json.encode({ mode = config.mode, port = config.port, items = #ITEMS })
    if encode_err then return nil, encode_err end
    local _, write_err = vol:writefile("/reports/summary.json", encoded)
    if write_err then return nil, write_err end

    -- Append
    for _, message in ipairs({ "configured", "stored" }) do
        local _, append_err = vol:writefile("/logs/app.log", message .. "\n", "a")
        if append_err then return nil, append_err end
    end

    -- Exclusive write (fails if exists)
    local ok, lock_err = vol:writefile("/lock.pid", tostring(process.pid()), "wx")
    if lock_err then return nil, lock_err end
    local _, exclusive_err = vol:writefile("/lock.pid", "someone else", "wx")

    -- A file handle for streaming writes
    local file, open_err = vol:open("/reports/items.csv", "w")
    if open_err then return nil, open_err end
    local _, header_err = file:write("id,name\n")
    if header_err then
        file:close()
        return nil, header_err
    end
    for _, item in ipairs(ITEMS) do
        local _, data_err = file:write(item.id .. "," .. item.name .. "\n")
        if data_err then
            file:close()
            return nil, data_err
        end
    end
    local _, sync_err = file:sync()
    if sync_err then
        file:close()
        return nil, sync_err
    end
    local _, close_err = file:close()
    if close_err then return nil, close_err end

    -- Copy from an open file
    local source, source_err = vol:open("/reports/items.csv", "r")
    if source_err then
        return nil, source_err
    end
    local copied, copy_err = vol:writefile("/archive/items.csv", source)
    source:close()
    if copy_err then return nil, copy_err end

    -- Read a file in chunks until EOF (NOT_FOUND)
    local chunked, chunk_open_err = vol:open("/archive/items.csv", "r")
    if chunk_open_err then return nil, chunk_open_err end
    local bytes = 0
    while true do
        local chunk, read_err = chunked:read(8)
        if read_err then
            if read_err:kind() == errors.NOT_FOUND then
                break -- EOF
            end
            chunked:close()
            return nil, read_err
        end
        bytes = bytes + #chunk
    end
    chunked:close()

    -- A scanner, line by line
    local lines_file, lines_err = vol:open("/archive/items.csv", "r")
    if lines_err then return nil, lines_err end
    local scanner, scanner_err = lines_file:scanner("lines")
    if scanner_err then
        lines_file:close()
        return nil, scanner_err
    end
    scanner:scan() -- skip header
    local names = {}
    while scanner:scan() do
        local line = scanner:text()
        names[#names + 1] = line:match("^%d+,(.*)$")
    end
    local scan_err = scanner:err()
    lines_file:close()
    if scan_err then return nil, scan_err end

    -- Get file info
    local info, stat_err = vol:stat("/archive/items.csv")
    if stat_err then return nil, stat_err end
    local is_dir, isdir_err = vol:isdir("/archive")
    if isdir_err then return nil, isdir_err end

    -- Remove the lock, then list the volume's root
    local removed, remove_err = vol:remove("/lock.pid")
    if remove_err then return nil, remove_err end
    local still_there = vol:exists("/lock.pid")

    local iter, state = vol:readdir("/")
    if not iter then return nil, state end
    local listing = {}
    for entry in iter, state do
        local suffix = ""
        if entry.type == fs.type.DIR then suffix = "/" end
        listing[#listing + 1] = entry.name .. suffix
    end

    local log_text, log_err = vol:readfile("/logs/app.log")
    if log_err then return nil, log_err end

    logger:info("report stored", { files = #listing, bytes = info.size, copied = copied == true })

    io.print(string.format(
        "fs root=%s items=%s bytes=%d/%d type=%s dir=%s mkdir_again=%s exclusive=%s lock=%s log=%d",
        table.concat(listing, ","), table.concat(names, "+"), bytes, info.size, info.type,
        tostring(is_dir), kind_of(again_err), kind_of(exclusive_err),
        (removed and not still_there) and "removed" or "kept",
        select(2, log_text:gsub("\n", ""))))
    return true
end

---------------------------------------------------------------------------
-- funcs and futures
---------------------------------------------------------------------------
local function call_functions()
    -- Synchronous call
    local digest, err = funcs.call("app.tools:digest", "/archive/items.csv")
    if err then
        return nil, err
    end

    -- Propagate request context
    local exec = funcs.new():with_context({ request_id = "req-42" })
    local signed, sign_err = exec:call("app:checksum", digest.sha256)
    if sign_err then return nil, sign_err end

    -- Async call with the timeout pattern
    local future, async_err = funcs.async("app.tools:digest", "/reports/summary.json")
    if async_err then
        return nil, async_err
    end
    local timeout = time.after("5s")
    local r = channel.select {
        future:channel():case_receive(),
        timeout:case_receive()
    }
    if r.channel == timeout then
        future:cancel()
        return nil, errors.new({ kind = errors.TIMEOUT, message = "Operation timed out" })
    end
    local payload, result_err = future:result()
    if result_err then
        return nil, result_err
    end
    local summary, data_err = payload:data()
    if data_err then return nil, data_err end

    -- Wait on the response channel
    local exec_timeout = funcs.new():with_options({ timeout = 5000 })
    local described, describe_err = exec_timeout:async("app.tools:describe", NS_URL)
    if describe_err then return nil, describe_err end
    local ch = described:response()
    local value, ok = ch:receive()
    local ns_version = "?"
    if ok then
        local result = value:data()
        ns_version = result.version .. "/" .. result.variant
    end

    -- Parallel operations
    local id5, id5_err = uuid.v5(NS_URL, "https://example.com/resource")
    if id5_err then return nil, id5_err end
    local f1, _ = funcs.async("app.tools:describe", id5)
    local f2, _ = funcs.async("app.tools:digest", "/logs/app.log")
    local ch1, ch2 = f1:channel(), f2:channel()
    -- (Wippy's docs select on both channels twice; a future's channel is
    -- closed after its one value in Warren (modules.md §5), so each round
    -- selects only on the channels still pending.)
    local results = {}
    local pending = { ch1, ch2 }
    while #pending > 0 do
        local cases = {}
        for i, ch in ipairs(pending) do cases[i] = ch:case_receive() end
        local p = channel.select(cases)
        if p.channel == ch1 then
            results.uuid = p.value:data()
        else
            results.log = p.value:data()
        end
        for i, ch in ipairs(pending) do
            if ch == p.channel then table.remove(pending, i) break end
        end
    end

    -- Errors keep their kind through result(); error() wraps them
    local missing, _ = funcs.async("app.tools:digest", "/missing.txt")
    local _, open = missing:response():receive()
    local _, missing_err = missing:result()
    local wrapped, has_error = missing:error()
    local _, invalid_err = funcs.call("app.tools:describe", "not-a-uuid")

    io.print(string.format(
        "funcs digest=%s size=%d head=%s signed=%s:%s summary=%d ns=%s v5=%d:%s log=%d complete=%s missing=%s/%s/%s invalid=%s",
        digest.sha256, digest.size, digest.head, signed.request_id, signed.signature:sub(1, 16),
        summary.size, ns_version, results.uuid.version, results.uuid.simple, results.log.size,
        tostring(future:is_complete()), tostring(open), kind_of(missing_err),
        has_error and wrapped:kind() or "none", kind_of(invalid_err)))
    return true
end

---------------------------------------------------------------------------
-- base64, hash, uuid, crypto
---------------------------------------------------------------------------
local function data_modules()
    -- base64
    local encoded, err = base64.encode("Hello, World!")
    if err then return nil, err end
    local decoded, decode_err = base64.decode(encoded)
    if decode_err then return nil, decode_err end
    local _, bad_err = base64.decode("not base64!")

    -- hash
    local sha = hash.sha256("data")
    local raw = hash.sha256("data", true)
    local md5 = hash.md5("data")
    local sha1 = hash.sha1("data")
    local mac = hash.hmac_sha256("message", "secret")
    local n = hash.fnv32("data")
    local derived, derive_err = hash.pbkdf2("password", "salt", 4096, 32)
    if derive_err then return nil, derive_err end

    -- uuid
    local id4, v4_err = uuid.v4()
    if v4_err then return nil, v4_err end
    local v4 = uuid.version(id4)
    local id7, v7_err = uuid.v7()
    if v7_err then return nil, v7_err end
    local info, parse_err = uuid.parse(id7)
    if parse_err then return nil, parse_err end
    local fresh = math.abs(info.timestamp - time.now():unix()) <= 60
    local id1, v1_err = uuid.v1()
    if v1_err then return nil, v1_err end
    local id3, v3_err = uuid.v3(NS_URL, "https://example.com/resource")
    if v3_err then return nil, v3_err end
    local urn, urn_err = uuid.format(id3, "urn")
    if urn_err then return nil, urn_err end
    local variant = uuid.variant(id4)

    -- crypto
    local bytes, bytes_err = crypto.random.bytes(32)
    if bytes_err then return nil, bytes_err end
    local str, str_err = crypto.random.string(32, "0123456789abcdef")
    if str_err then return nil, str_err end
    local rid, rid_err = crypto.random.uuid()
    if rid_err then return nil, rid_err end
    local hex, hmac_err = crypto.hmac.sha256("secret", "message")
    if hmac_err then return nil, hmac_err end
    local equal = crypto.constant_time_compare(hex, mac)
    local key, kdf_err = crypto.pbkdf2("password", "salt", 4096, 32)
    if kdf_err then return nil, kdf_err end
    local key512, kdf512_err = crypto.pbkdf2("password", "salt", 1000, 16, "sha512")
    if kdf512_err then return nil, kdf512_err end

    io.print(string.format("base64 %s %s bad=%s", encoded, decoded, kind_of(bad_err)))
    io.print(string.format("hash sha256=%s raw=%d md5=%s sha1=%s hmac=%s fnv32=%d pbkdf2=%s",
        sha, #raw, md5, sha1, mac, n, base64.encode(derived)))
    io.print(string.format("uuid v4=%d/%s/%s v7=%d/%s v1=%d v3=%s",
        v4, variant, tostring(uuid.validate(id4)), info.version, tostring(fresh),
        uuid.version(id1), urn))
    io.print(string.format("crypto bytes=%d string=%s uuid=%d hmac=%s pbkdf2=%s pbkdf2_512=%s",
        #bytes, tostring(#str == 32 and str:match("^[0-9a-f]+$") ~= nil), uuid.version(rid),
        tostring(equal), base64.encode(key), base64.encode(key512)))
    return true
end

local function main()
    local log = logger:named("wippy-io"):with({ request_id = "req-42" })
    log:info("starting", { pid = process.pid() })

    local config, err = configure()
    if err then return nil, err end

    local _, store_err = store(config)
    if store_err then return nil, store_err end

    local _, funcs_err = call_functions()
    if funcs_err then return nil, funcs_err end

    local _, data_err = data_modules()
    if data_err then return nil, data_err end

    log:info("done")
    io.print("done")
    return 0
end

return { main = main }
