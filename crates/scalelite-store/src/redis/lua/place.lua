-- Finds or creates a meeting atomically, choosing the least loaded eligible
-- server and reserving load on it in the same step, so that concurrent
-- creates (from any number of API processes) see each other's reservations
-- and one meeting id always lands on exactly one server.
-- ARGV: prefix, meeting id, tenant id, tags (';'-joined, '' = none),
--       required ('1'/'0'), moderator password, ttl seconds, reserve users,
--       voice bridge candidates...
-- Returns {'existing', meeting, server, enabled} | {'placed', meeting, server, enabled}
--       | {'noserver'} | {'tagunavailable'} | {'tenant_conflict'} | {'vb_exhausted'}
local id = ARGV[2]
local tenant = ARGV[3]
local mkey = key('meeting:' .. id)

local mflat = redis.call('HGETALL', mkey)
if #mflat > 0 then
  local meeting = to_table(mflat)
  local stored = meeting['tenant_id'] or ''
  -- A tenant never takes over another tenant's meeting, nor one stored
  -- without tenant (Scalelite forwards to the latter and merges them).
  if tenant ~= '' and stored ~= tenant then
    return {'tenant_conflict'}
  end
  local route = meeting_route(mflat, meeting)
  return {'existing', route[1], route[2], route[3]}
end

-- Selection (scalelite_core::selection::select is the reference).
local flat = redis.call('ZRANGE', key('server_load'), 0, -1, 'WITHSCORES')
if #flat == 0 then
  return {'noserver'}
end
local pool = {}
for i = 1, #flat, 2 do
  local sid = flat[i]
  local info = redis.call('HMGET', key('server:' .. sid), 'url', 'tag')
  local tag = info[2]
  if tag == false or tag == '' then
    tag = nil
  end
  pool[#pool + 1] = {id = sid, load = tonumber(flat[i + 1]), tag = tag, exists = info[1] ~= false}
end

local ordered = {}
local tags = ARGV[4]
if tags ~= '' then
  for wanted in string.gmatch(tags .. ';', '([^;]*);') do
    for _, s in ipairs(pool) do
      if (s.tag or 'none') == wanted then
        ordered[#ordered + 1] = s
      end
    end
  end
  for pos, s in ipairs(ordered) do
    s.pos = pos
  end
  table.sort(ordered, function(a, b)
    if a.load ~= b.load then
      return a.load < b.load
    end
    return a.pos < b.pos
  end)
end
if #ordered == 0 then
  if ARGV[5] == '1' then
    return {'tagunavailable'}
  end
  for _, s in ipairs(pool) do
    if s.tag == nil then
      ordered[#ordered + 1] = s
    end
  end
end
local chosen = nil
for _, s in ipairs(ordered) do
  if s.exists then
    chosen = s.id
    break
  end
end
if chosen == nil then
  return {'noserver'}
end

-- Voice bridge: the first candidate that is free or already ours.
local vbkey = key('voice_bridges')
local vb = nil
for i = 9, #ARGV do
  local owner = redis.call('HGET', vbkey, ARGV[i])
  if owner == false then
    redis.call('HSET', vbkey, ARGV[i], id)
    vb = ARGV[i]
    break
  elseif owner == id then
    vb = ARGV[i]
    break
  end
end
if vb == nil then
  return {'vb_exhausted'}
end

redis.call('HSET', mkey, 'server_id', chosen, 'moderator_pw', ARGV[6], 'voice_bridge', vb, 'tenant_id', tenant)
redis.call('EXPIRE', mkey, ARGV[7])
redis.call('SADD', key('meetings'), id)

local sflat = redis.call('HGETALL', key('server:' .. chosen))
local server = to_table(sflat)
local reserve = tonumber(ARGV[8]) * multiplier(server)
if reserve > 0 then
  redis.call('ZADD', key('server_load'), 'XX', 'INCR', tostring(reserve), chosen)
end
return {'placed', redis.call('HGETALL', mkey), sflat, redis.call('SISMEMBER', key('server_enabled'), chosen)}
