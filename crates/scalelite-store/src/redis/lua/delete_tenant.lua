-- Deletes a tenant as Scalelite's Tenant#destroy! does (its settings stay),
-- and its tenant_meetings:<id> (per-tenant limits; prune only walks the
-- tenants that exist).
-- ARGV: prefix, id. Returns 1 if it existed, else 0.
local id = ARGV[2]
local tkey = key('tenant:' .. id)
local existed = redis.call('SISMEMBER', key('tenants'), id) + redis.call('EXISTS', tkey)
local name = redis.call('HGET', tkey, 'name')
redis.call('DEL', tkey, key('tenant_meetings:' .. id))
if name then
  redis.call('DEL', key('tenant_name:' .. name))
end
redis.call('SREM', key('tenants'), id)
if existed > 0 then
  return 1
end
return 0
