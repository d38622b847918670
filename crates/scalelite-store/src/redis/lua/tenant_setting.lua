-- Creates ('create') or deletes ('delete') a tenant setting as Scalelite's
-- TenantSetting does.
-- create ARGV: prefix, 'create', id, tenant_id, param, value, override
--   -> 'ok' or 'exists'
-- delete ARGV: prefix, 'delete', id -> 1 if it existed, else 0
local mode, id = ARGV[2], ARGV[3]
local skey = key('tenant_setting:' .. id)
if mode == 'create' then
  local tenant = ARGV[4]
  if redis.call('SISMEMBER', key('tenant_settings:' .. tenant), id) == 1 then
    return 'exists'
  end
  redis.call('HSET', skey, 'param', ARGV[5], 'value', ARGV[6], 'override', ARGV[7], 'tenant_id', tenant)
  redis.call('SADD', key('tenant_settings:' .. tenant), id)
  return 'ok'
end
local tenant = redis.call('HGET', skey, 'tenant_id')
local existed = redis.call('DEL', skey)
if tenant then
  redis.call('SREM', key('tenant_settings:' .. tenant), id)
end
return existed
