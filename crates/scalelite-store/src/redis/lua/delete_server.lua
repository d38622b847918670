-- Deletes a server as Scalelite's Server#destroy! does (its meetings and
-- health counters are left alone).
-- ARGV: prefix, id
-- Returns 1 if the server existed, else 0.
local id = ARGV[2]
local existed = redis.call('SISMEMBER', key('servers'), id) + redis.call('EXISTS', key('server:' .. id))
redis.call('DEL', key('server:' .. id), key('server_placement:' .. id))
redis.call('SREM', key('servers'), id)
redis.call('ZREM', key('server_load'), id)
redis.call('SREM', key('server_enabled'), id)
redis.call('ZREM', key('cordoned_server_load'), id)
if existed > 0 then
  return 1
end
return 0
