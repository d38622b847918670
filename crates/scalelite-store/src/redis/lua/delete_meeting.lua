-- Deletes a meeting record, its `meetings` entry, its voice bridge, the
-- create parameters kept for re-homing it (meeting_create:<id>) and its
-- member of tenant_meetings:<tenant id>.
-- ARGV: prefix, meeting id, expected server id ('' = unconditional)
-- With an expected server, nothing happens unless the meeting still points
-- there (so a meeting re-created meanwhile is not removed).
-- Returns 1 when a record was deleted, else 0.
local id = ARGV[2]
local mkey = key('meeting:' .. id)
local meeting = to_table(redis.call('HGETALL', mkey))
if meeting['server_id'] == nil then
  redis.call('SREM', key('meetings'), id)
  redis.call('DEL', key('meeting_create:' .. id))
  return 0
end
if ARGV[3] ~= '' and meeting['server_id'] ~= ARGV[3] then
  return 0
end
redis.call('DEL', mkey, key('meeting_create:' .. id))
redis.call('SREM', key('meetings'), id)
local tenant = meeting['tenant_id']
if tenant ~= nil and tenant ~= '' then
  redis.call('SREM', key('tenant_meetings:' .. tenant), id)
end
local vb = meeting['voice_bridge']
if vb ~= nil and vb ~= '' and redis.call('HGET', key('voice_bridges'), vb) == id then
  redis.call('HDEL', key('voice_bridges'), vb)
end
return 1
