-- Finds the meeting a voice bridge (dial-in pin) belongs to, and its server,
-- in one round trip.
-- ARGV: prefix, voice bridge
-- Returns {} when unknown or stale (the meeting record is gone, holds
-- another voice bridge or no server), else {meeting id, meeting fields,
-- server fields, enabled}.
local id = redis.call('HGET', key('voice_bridges'), ARGV[2])
if not id then
  return {}
end
local mflat = redis.call('HGETALL', key('meeting:' .. id))
if #mflat == 0 then
  return {}
end
local meeting = to_table(mflat)
if (meeting['voice_bridge'] or '') ~= ARGV[2] or (meeting['server_id'] or '') == '' then
  return {}
end
local route = meeting_route(mflat, meeting)
return {id, route[1], route[2], route[3]}
