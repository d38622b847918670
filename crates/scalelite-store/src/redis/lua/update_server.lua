-- Updates a server as Scalelite's Server#save does: changed fields only,
-- then the state bookkeeping of the sets (reference §6.1).
-- ARGV: prefix, id,
--       url flag, url, secret flag, secret, multiplier flag, multiplier,
--       tag op ('0' keep, '1' set, '2' remove), tag, new state ('' = keep),
--       region op ('0' keep, '1' set, '2' remove), region,
--       capabilities op ('0' keep, '1' set, '2' remove), capabilities (';'-joined)
-- The region and capabilities live in server_placement:<id> (a key Ruby
-- ignores: Ruby loads every field of server:<id> into its model).
-- Returns 'ok' | 'missing'
local id = ARGV[2]
local skey = key('server:' .. id)
if redis.call('SISMEMBER', key('servers'), id) == 0 or redis.call('EXISTS', skey) == 0 then
  return 'missing'
end
if ARGV[3] == '1' then
  redis.call('HSET', skey, 'url', ARGV[4])
end
if ARGV[5] == '1' then
  redis.call('HSET', skey, 'secret', ARGV[6])
end
if ARGV[7] == '1' then
  redis.call('HSET', skey, 'load_multiplier', ARGV[8])
end
if ARGV[9] == '1' then
  redis.call('HSET', skey, 'tag', ARGV[10])
elseif ARGV[9] == '2' then
  redis.call('HDEL', skey, 'tag')
end
local pkey = key('server_placement:' .. id)
if ARGV[12] == '1' then
  redis.call('HSET', pkey, 'region', ARGV[13])
elseif ARGV[12] == '2' then
  redis.call('HDEL', pkey, 'region')
end
if ARGV[14] == '1' then
  redis.call('HSET', pkey, 'capabilities', ARGV[15])
elseif ARGV[14] == '2' then
  redis.call('HDEL', pkey, 'capabilities')
end

local new = ARGV[11]
local old = redis.call('HGET', skey, 'state')
if old == '' then
  old = false
end
if new == '' or new == old then
  return 'ok'
end

-- The load Server.find would have loaded, for the old state.
local load = false
if old == 'cordoned' then
  load = redis.call('ZSCORE', key('cordoned_server_load'), id)
elseif old == 'disabled' then
  load = false
elseif old then
  load = redis.call('ZSCORE', key('server_load'), id)
elseif redis.call('SISMEMBER', key('server_enabled'), id) == 1 then
  load = redis.call('ZSCORE', key('server_load'), id)
end

redis.call('HSET', skey, 'state', new)
if new == 'enabled' then
  load = load or redis.call('ZSCORE', key('cordoned_server_load'), id)
  redis.call('SADD', key('server_enabled'), id)
  if load then
    redis.call('ZADD', key('server_load'), load, id)
  end
  redis.call('ZREM', key('cordoned_server_load'), id)
elseif new == 'cordoned' then
  load = load or redis.call('ZSCORE', key('server_load'), id)
  if load then
    redis.call('ZADD', key('cordoned_server_load'), load, id)
  end
  redis.call('ZREM', key('server_load'), id)
  redis.call('SREM', key('server_enabled'), id)
else
  redis.call('SREM', key('server_enabled'), id)
  redis.call('ZREM', key('server_load'), id)
  redis.call('ZREM', key('cordoned_server_load'), id)
end
return 'ok'
