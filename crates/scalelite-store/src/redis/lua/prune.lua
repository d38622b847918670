-- Housekeeping for what Scalelite leaves behind when a meeting record
-- expires: `meetings` members without a record are removed (and members of
-- tenant_meetings:<tenant id>, ours, whose record is gone); `voice_bridges`
-- entries whose meeting does not exist (or uses another number) are removed
-- only if they were already orphans one round ago (ARGV), because Ruby
-- Scalelite writes a voice bridge a moment before its meeting record.
-- ARGV: prefix, orphan voice bridges seen last round...
-- Returns {stale members removed, orphans removed, {current orphans...}}
local stale = 0
for _, id in ipairs(redis.call('SMEMBERS', key('meetings'))) do
  if redis.call('EXISTS', key('meeting:' .. id)) == 0 then
    redis.call('SREM', key('meetings'), id)
    stale = stale + 1
  end
end
-- Members of tenant_meetings:<tenant id> (per-tenant limits) whose record
-- expired or belongs elsewhere now.
for _, tid in ipairs(redis.call('SMEMBERS', key('tenants'))) do
  local tmkey = key('tenant_meetings:' .. tid)
  for _, id in ipairs(redis.call('SMEMBERS', tmkey)) do
    if redis.call('HGET', key('meeting:' .. id), 'tenant_id') ~= tid then
      redis.call('SREM', tmkey, id)
    end
  end
end
local vbkey = key('voice_bridges')
local function orphan(vb)
  local owner = redis.call('HGET', vbkey, vb)
  if not owner then
    return false
  end
  return redis.call('HGET', key('meeting:' .. owner), 'voice_bridge') ~= vb
end
local removed = 0
for i = 2, #ARGV do
  if orphan(ARGV[i]) then
    redis.call('HDEL', vbkey, ARGV[i])
    removed = removed + 1
  end
end
local current = {}
local flat = redis.call('HGETALL', vbkey)
for i = 1, #flat, 2 do
  if redis.call('HGET', key('meeting:' .. flat[i + 1]), 'voice_bridge') ~= flat[i] then
    current[#current + 1] = flat[i]
  end
end
return {stale, removed, current}
