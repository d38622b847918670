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

local function multiplier(server)
  local m = tonumber(server['load_multiplier'] or '')
  if m == nil or m == 0 then
    return 1
  end
  return m
end

-- {meeting fields, server fields, in server_enabled} for a meeting hash
-- (server fields empty when the meeting has no server or it was deleted).
local function meeting_route(mflat, meeting)
  local sid = meeting['server_id'] or ''
  if sid == '' then
    return {mflat, {}, 0}
  end
  return {
    mflat,
    redis.call('HGETALL', key('server:' .. sid)),
    redis.call('SISMEMBER', key('server_enabled'), sid),
  }
end
