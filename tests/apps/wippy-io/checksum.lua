-- app:checksum: signs a document with the application's private key,
-- tagged with the request id the caller put in the call's context.
local ctx = require("ctx")
local env = require("env")
local hash = require("hash")

local function handler(document)
    local request_id, err = ctx.get("request_id")
    if err then
        return nil, err
    end

    -- A private variable: reachable only by its entry id.
    local key, key_err = env.get("app:signing_key")
    if key_err then return nil, key_err end

    return {
        request_id = request_id,
        signature = hash.hmac_sha256(document, key),
    }
end

return { handler = handler }
