-- Routes a join in one round trip: finds the meeting and its server, refuses
-- an offline or disabled server, and counts the join (ZADD XX INCR, so only
-- servers in the placement pool change load).
-- Standalone (no prelude) and allocation-light: it runs once per join.
-- ARGV: prefix, meeting id, tenant id ('' = no tenant check), the tenant's
--       most participants ('' = no limit: nothing more is read)
-- Under a participant limit, the tenant's count in tenant_participants (the
-- poller's, plus the joins routed since) is compared and counted.
-- Returns {url, secret, server id, multiplier} | 0 (not found)
--       | 1 (server offline or disabled)
--       | 2 (the tenant's participant limit is reached)
-- (the server id and multiplier let the API count later joins of a cached
-- route itself, batched: MeetingStore::add_load)
local p = ARGV[1]
local m = redis.call('HMGET', p .. 'meeting:' .. ARGV[2], 'server_id', 'tenant_id')
local sid = m[1]
if not sid or sid == '' then
  return 0
end
if ARGV[3] ~= '' and (m[2] or '') ~= ARGV[3] then
  return 0
end
local f = redis.call('HMGET', p .. 'server:' .. sid, 'url', 'secret', 'online', 'state', 'load_multiplier')
if not f[1] then
  return 0
end
if f[3] ~= 'true' then
  return 1
end
-- Scalelite's Server#disabled?: state "disabled", or no state and not in
-- the legacy server_enabled set.
local state = f[4]
if state == 'disabled' then
  return 1
end
if (not state or state == '') and redis.call('SISMEMBER', p .. 'server_enabled', sid) == 0 then
  return 1
end
local mult = tonumber(f[5] or '')
if not mult or mult == 0 then
  mult = 1
end
local limit = tonumber(ARGV[4] or '')
if limit and limit > 0 and ARGV[3] ~= '' then
  local tp = p .. 'tenant_participants'
  if (tonumber(redis.call('HGET', tp, ARGV[3]) or '') or 0) >= limit then
    return 2
  end
  redis.call('HINCRBY', tp, ARGV[3], 1)
end
redis.call('ZADD', p .. 'server_load', 'XX', 'INCR', mult, sid)
return {f[1], f[2] or '', sid, tostring(mult)}
