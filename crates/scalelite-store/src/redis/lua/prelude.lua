-- Shared helpers, prepended to every script. ARGV[1] is the key prefix
-- ("scalelite:"); keys are built here because they depend on stored values
-- (a meeting's server id), which is why the scripts do not use KEYS.
local prefix = ARGV[1]

local function key(name)
  return prefix .. name
end

local function to_table(flat)
  local t = {}
  for i = 1, #flat, 2 do
    t[flat[i]] = flat[i + 1]
  end
  return t
end

-- Scalelite's Server#disabled?: state "disabled", or no state and not in
-- the legacy server_enabled set.
local function is_disabled(server, id)
  local state = server['state']
  if state == 'disabled' then
    return true
  end
  if state == nil or state == '' then
    return redis.call('SISMEMBER', key('server_enabled'), id) == 0
  end
  return false
end

local function multiplier(server)
  local m = tonumber(server['load_multiplier'] or '')
  if m == nil or m == 0 then
    return 1
  end
  return m
end
