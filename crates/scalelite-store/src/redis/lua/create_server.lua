-- Creates a server as Scalelite's Server.create! does: the hash with
-- `online` false and no `state` (so it starts disabled), and its `servers`
-- entry. Fails when the id is taken.
-- ARGV: prefix, id, url, secret, load_multiplier ('' = none), tag ('' = none)
-- Returns 'ok' | 'exists'
local id = ARGV[2]
if redis.call('SISMEMBER', key('servers'), id) == 1 then
  return 'exists'
end
local skey = key('server:' .. id)
-- A hash without a `servers` entry is debris, and so is the placement hash
-- of a server deleted by Ruby (which does not know it); start clean.
redis.call('DEL', skey, key('server_placement:' .. id))
redis.call('HSET', skey, 'url', ARGV[3], 'secret', ARGV[4])
if ARGV[6] ~= '' then
  redis.call('HSET', skey, 'tag', ARGV[6])
end
if ARGV[5] ~= '' then
  redis.call('HSET', skey, 'load_multiplier', ARGV[5])
end
redis.call('HSET', skey, 'online', 'false')
redis.call('SADD', key('servers'), id)
return 'ok'
