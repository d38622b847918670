-- Replaces the participants the poller counted in each tenant's meetings
-- (tenant_participants, a hash Ruby ignores: tenant id -> count; joins
-- routed under a participant limit add one until the next round), only
-- while the caller holds the lease.
-- ARGV: prefix, lease name, token, then tenant id / count pairs
-- Returns 1 when written, 0 when the lease is not held.
if redis.call('GET', key(ARGV[2])) ~= ARGV[3] then
  return 0
end
local tp = key('tenant_participants')
redis.call('DEL', tp)
for i = 4, #ARGV - 1, 2 do
  redis.call('HSET', tp, ARGV[i], ARGV[i + 1])
end
return 1
