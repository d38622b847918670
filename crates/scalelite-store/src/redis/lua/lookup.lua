-- Finds a meeting and its server in one round trip.
-- ARGV: prefix, meeting id, tenant id ('' = no tenant check)
-- Returns {} when not found, else {meeting fields, server fields, enabled}.
local mflat = redis.call('HGETALL', key('meeting:' .. ARGV[2]))
if #mflat == 0 then
  return {}
end
local meeting = to_table(mflat)
if ARGV[3] ~= '' and (meeting['tenant_id'] or '') ~= ARGV[3] then
  return {}
end
return meeting_route(mflat, meeting)
