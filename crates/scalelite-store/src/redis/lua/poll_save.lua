-- Saves one server's poll result with Scalelite's health hysteresis (§7.2):
-- consecutive successes bring an offline server online, consecutive
-- failures take an online server offline (its load leaves the pool; its
-- meetings stay mapped, see docs/COMPATIBILITY.md), a cordoned server at
-- zero load becomes disabled, statistics and load are written where the
-- server's state keeps them. Counters live in the bare-id hash, as in
-- Scalelite. Nothing is written unless the caller still holds the lease.
-- ARGV: prefix, lease name, token, id, reachable ('1'/'0'), load, meetings,
--       users, largest_meeting, videos, version flag ('1' = set), version,
--       healthy threshold, unhealthy threshold
-- Returns {'not_leader'} | {'gone'} | {online ('1'/'0'), state, transition}
if redis.call('GET', key(ARGV[2])) ~= ARGV[3] then
  return {'not_leader'}
end
local id = ARGV[4]
local skey = key('server:' .. id)
if redis.call('SISMEMBER', key('servers'), id) == 0 or redis.call('EXISTS', skey) == 0 then
  return {'gone'}
end
local counters = key(id)
local f = redis.call('HMGET', skey, 'online', 'state')
local online = f[1] == 'true'
local state = f[2]
if state == '' then
  state = false
end
if ARGV[11] == '1' then
  redis.call('HSET', skey, 'bbb_version', ARGV[12])
end

local function result(transition)
  return {online and '1' or '0', state or '', transition}
end

if ARGV[5] ~= '1' then
  redis.call('HSET', counters, 'healthy_counter', 0)
  if not online then
    return result('')
  end
  if redis.call('HINCRBY', counters, 'unhealthy_counter', 1) < tonumber(ARGV[14]) then
    return result('')
  end
  redis.call('HSET', counters, 'healthy_counter', 0, 'unhealthy_counter', 0)
  redis.call('HSET', skey, 'online', 'false', 'meetings', 0, 'users', 0, 'largest_meeting', 0, 'videos', 0)
  redis.call('ZREM', key('server_load'), id)
  redis.call('ZREM', key('cordoned_server_load'), id)
  online = false
  return result('offline')
end

redis.call('HSET', counters, 'unhealthy_counter', 0)
local transition = ''
if not online then
  if redis.call('HINCRBY', counters, 'healthy_counter', 1) < tonumber(ARGV[13]) then
    return result('')
  end
  redis.call('HSET', counters, 'healthy_counter', 0, 'unhealthy_counter', 0)
  redis.call('HSET', skey, 'online', 'true')
  online = true
  transition = 'online'
end
local load = ARGV[6]
if state == 'cordoned' and tonumber(load) == 0 then
  redis.call('HSET', skey, 'state', 'disabled')
  redis.call('SREM', key('server_enabled'), id)
  redis.call('ZREM', key('server_load'), id)
  redis.call('ZREM', key('cordoned_server_load'), id)
  state = 'disabled'
  if transition == '' then
    transition = 'drained'
  end
end
redis.call('HSET', skey, 'meetings', ARGV[7], 'users', ARGV[8], 'largest_meeting', ARGV[9], 'videos', ARGV[10])
if state == 'cordoned' then
  redis.call('ZADD', key('cordoned_server_load'), load, id)
elseif state == 'disabled' then
  -- A disabled server keeps no load.
elseif state or redis.call('SISMEMBER', key('server_enabled'), id) == 1 then
  redis.call('ZADD', key('server_load'), load, id)
end
return result(transition)
