-- Lists every server with what Scalelite derives from the sets.
-- ARGV: prefix
-- Returns {{id, fields, enabled, load, cordoned_load}, ...}
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', key('servers'))) do
  out[#out + 1] = {
    id,
    redis.call('HGETALL', key('server:' .. id)),
    redis.call('SISMEMBER', key('server_enabled'), id),
    redis.call('ZSCORE', key('server_load'), id) or '',
    redis.call('ZSCORE', key('cordoned_server_load'), id) or '',
  }
end
return out
