-- app.tools:describe: what a UUID is made of.
local uuid = require("uuid")

local function handler(id)
    if not uuid.validate(id) then
        return nil, errors.new({
            message = "not a UUID: " .. tostring(id),
            kind = errors.INVALID,
            retryable = false,
        })
    end

    local info, err = uuid.parse(id)
    if err then
        return nil, err
    end

    local simple, format_err = uuid.format(id, "simple")
    if format_err then return nil, format_err end

    return {
        version = info.version,
        variant = info.variant,
        simple = simple,
    }
end

return { handler = handler }
