-- Creates or updates a tenant as Scalelite's Tenant#save! does.
-- ARGV: prefix, mode ('create' | 'update'), id, then field/value pairs
-- ('name' updates the tenant_name:<name> index; names are not unique).
-- Returns 'ok', 'exists' (create of a known id) or 'missing' (update of an
-- unknown id).
local mode, id = ARGV[2], ARGV[3]
local known = redis.call('SISMEMBER', key('tenants'), id) == 1
if mode == 'create' and known then
  return 'exists'
end
if mode == 'update' and not known then
  return 'missing'
end
local tkey = key('tenant:' .. id)
local old_name = redis.call('HGET', tkey, 'name')
for i = 4, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  if field == 'name' then
    if mode == 'update' and old_name and old_name ~= value then
      redis.call('DEL', key('tenant_name:' .. old_name))
    end
    redis.call('HSET', key('tenant_name:' .. value), 'id', id)
  end
  redis.call('HSET', tkey, field, value)
end
if mode == 'create' then
  redis.call('SADD', key('tenants'), id)
end
return 'ok'
