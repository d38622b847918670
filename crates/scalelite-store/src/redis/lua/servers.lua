-- Lists servers with what Scalelite derives from the sets: every member of
-- `servers`, or the given ids (Scalelite's Server.find reads the hash only).
-- ARGV: prefix, [id...]
-- Returns {{id, fields, enabled, load, cordoned_load, placement fields}, ...};
-- records without a hash are left out. The placement fields (region,
-- capabilities) are server_placement:<id>, a key Ruby ignores.
local ids = {}
if #ARGV > 1 then
  for i = 2, #ARGV do
    ids[#ids + 1] = ARGV[i]
  end
else
  ids = redis.call('SMEMBERS', key('servers'))
end
local out = {}
for _, id in ipairs(ids) do
  local fields = redis.call('HGETALL', key('server:' .. id))
  if #fields > 0 then
    out[#out + 1] = {
      id,
      fields,
      redis.call('SISMEMBER', key('server_enabled'), id),
      redis.call('ZSCORE', key('server_load'), id) or '',
      redis.call('ZSCORE', key('cordoned_server_load'), id) or '',
      redis.call('HGETALL', key('server_placement:' .. id)),
    }
  end
end
return out
