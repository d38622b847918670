-- Reads tenants: every member of `tenants` (ARGV[2] = 'all'), one id
-- ('id', ARGV[3]) or the id the name index gives ('name', ARGV[3]).
-- Returns {id, hash, settings} per tenant found, where settings is a list of
-- {setting id, hash}. Tenants without a hash are skipped, as Scalelite does.
local mode = ARGV[2]
local ids
if mode == 'all' then
  ids = redis.call('SMEMBERS', key('tenants'))
elseif mode == 'id' then
  ids = {ARGV[3]}
else
  local id = redis.call('HGET', key('tenant_name:' .. ARGV[3]), 'id')
  if not id then
    return {}
  end
  ids = {id}
end
local out = {}
for _, id in ipairs(ids) do
  local hash = redis.call('HGETALL', key('tenant:' .. id))
  if #hash > 0 then
    local settings = {}
    for _, sid in ipairs(redis.call('SMEMBERS', key('tenant_settings:' .. id))) do
      local shash = redis.call('HGETALL', key('tenant_setting:' .. sid))
      if #shash > 0 then
        table.insert(settings, {sid, shash})
      end
    end
    table.insert(out, {id, hash, settings})
  end
end
return out
