local function add(a: integer, b: integer): integer
    return a + b
end
local total: integer = add(2, 3)
print(total)
