-- Routes a join in one round trip: finds the meeting and its server, refuses
-- an offline or disabled server, and counts the join (ZADD XX INCR, so only
-- servers in the placement pool change load).
-- ARGV: prefix, meeting id, tenant id ('' = no tenant check)
-- Returns {'ok', url, secret} | {'notfound'} | {'unavailable'}
local meeting = to_table(redis.call('HGETALL', key('meeting:' .. ARGV[2])))
local sid = meeting['server_id']
if sid == nil or sid == '' then
  return {'notfound'}
end
if ARGV[3] ~= '' and (meeting['tenant_id'] or '') ~= ARGV[3] then
  return {'notfound'}
end
local server = to_table(redis.call('HGETALL', key('server:' .. sid)))
if server['url'] == nil then
  return {'notfound'}
end
if server['online'] ~= 'true' or is_disabled(server, sid) then
  return {'unavailable'}
end
redis.call('ZADD', key('server_load'), 'XX', 'INCR', tostring(multiplier(server)), sid)
return {'ok', server['url'], server['secret'] or ''}
