-- Finds or creates a meeting atomically, choosing the least loaded eligible
-- server and reserving load on it in the same step, so that concurrent
-- creates (from any number of API processes) see each other's reservations
-- and one meeting id always lands on exactly one server.
-- ARGV: prefix, meeting id, tenant id, tags (';'-joined, '' = none),
--       required ('1'/'0'), moderator password, ttl seconds, reserve users,
--       replace on (a server id: re-homing, '' = no), create parameters to
--       keep ('' = none), their origin, the tenant's most concurrent
--       meetings ('' or '0' = no limit), needed capabilities (';'-joined,
--       '' = none), preferred regions (';'-joined, best first, '' = none),
--       the load from which a server is full, voice bridge candidates...
-- A re-homing placement (replace on) replaces an existing record that still
-- points to that server, as if it did not exist; nothing is written when no
-- server can take the meeting. The kept create parameters
-- (meeting_create:<id>, a key Ruby ignores) get the record's TTL.
-- A tenant's meetings are members of tenant_meetings:<tenant id> (a key Ruby
-- ignores; removed by delete_meeting.lua, stale members by prune.lua); at
-- the tenant's limit a new meeting is refused, after dropping members whose
-- record is gone (so the work is bounded by the tenant's own meetings).
-- Returns {'existing', meeting, server, enabled} | {'placed', meeting, server, enabled}
--       | {'noserver'} | {'tagunavailable'} | {'tenant_conflict'} | {'vb_exhausted'}
--       | {'tenant_limit'} | {'capabilityunavailable'}
local id = ARGV[2]
local tenant = ARGV[3]
local mkey = key('meeting:' .. id)

local replace_on = ARGV[9]
local replacing = false
local mflat = redis.call('HGETALL', mkey)
if #mflat > 0 then
  local meeting = to_table(mflat)
  local stored = meeting['tenant_id'] or ''
  -- A tenant never takes over another tenant's meeting, nor one stored
  -- without tenant (Scalelite forwards to the latter and merges them).
  if tenant ~= '' and stored ~= tenant then
    return {'tenant_conflict'}
  end
  if replace_on == '' or meeting['server_id'] ~= replace_on then
    local route = meeting_route(mflat, meeting)
    return {'existing', route[1], route[2], route[3]}
  end
  replacing = true
end

-- The tenant's limit (a re-homed meeting is one of its meetings already).
local tmkey = nil
if tenant ~= '' then
  tmkey = key('tenant_meetings:' .. tenant)
end
local limit = tonumber(ARGV[12]) or 0
if tmkey ~= nil and limit > 0 and not replacing and redis.call('SCARD', tmkey) >= limit then
  local live = 0
  for _, mid in ipairs(redis.call('SMEMBERS', tmkey)) do
    if mid ~= id and redis.call('HGET', key('meeting:' .. mid), 'tenant_id') == tenant then
      live = live + 1
    else
      redis.call('SREM', tmkey, mid)
    end
  end
  if live >= limit then
    return {'tenant_limit'}
  end
end

-- Selection (scalelite_core::selection::select_for is the reference): the
-- first server with a hash among the candidates. With tags the candidates are the
-- servers carrying one of them, by load, then the tag's position in the
-- list, then id; if no server carries any (hash or not), or without tags,
-- the untagged servers by load and id (with required tags: none, and
-- 'tagunavailable').
-- server_load is walked in its order (load, then id) in rank windows of 4,
-- 16, 64, ... members, reading only the hashes of the members walked, and
-- the walk stops as soon as the answer is decided: without tags at the first
-- untagged server with a hash; with tags at the first server with a hash
-- carrying the first tag, else at the end of the group of equal load in
-- which the first one with a hash carrying any was found (a later member of
-- that load may carry an earlier tag). So a create reads the members ranked
-- before its answer, the whole pool when none qualifies (see "Placement at
-- fleet scale" in docs/ARCHITECTURE.md).
-- Needs (capabilities, regions) add, for each member walked, a read of its
-- server_placement:<id> and bbb_version: a server lacking a capability is
-- not a candidate ('capabilityunavailable' when no member has them all),
-- and a candidate's rank is the position of its region in the preferred
-- list while its load is below the capacity (else after every region), the
-- winner being the least (rank, load, tag position, id). The walk stops at
-- the end of the tie group of a rank-1 winner, or once the load reached the
-- capacity with a winner found (every later member ranks last).

-- position[tag] = where the tag is first named (nil: no tags were given).
local position = nil
if ARGV[4] ~= '' then
  position = {}
  local n = 0
  for wanted in string.gmatch(ARGV[4] .. ';', '([^;]*);') do
    n = n + 1
    if position[wanted] == nil then
      position[wanted] = n
    end
  end
end

-- Needs.
local needed = {}
for cap in string.gmatch(ARGV[13], '([^;]+)') do
  needed[#needed + 1] = cap
end
local region_rank = {}
local regions = 0
for region in string.gmatch(ARGV[14], '([^;]+)') do
  regions = regions + 1
  if region_rank[region] == nil then
    region_rank[region] = regions
  end
end
local capacity = tonumber(ARGV[15]) or 0
local needs = #needed > 0 or regions > 0
local last_rank = regions + 1

-- The automatic capability of a bbb_version (scalelite_core's
-- version_capability): '3.0.4' -> 'bbb-3.0'.
local function version_capability(version)
  if not version then
    return nil
  end
  version = string.match(version, '^%s*(.-)%s*$')
  local major = string.match(version, '^(%d+)')
  if major == nil or #major > 4 then
    return nil
  end
  local minor = string.match(version, '^%d+%.(%d+)')
  if minor == nil or #minor > 4 then
    return 'bbb-' .. major
  end
  return 'bbb-' .. major .. '.' .. minor
end

-- Whether a server offers every needed capability (declared ones are
-- ';'-joined and trimmed as scalelite_core's parse_list reads them).
local function capable(declared, version)
  if #needed == 0 then
    return true
  end
  local offers = {}
  for cap in string.gmatch(declared or '', '([^;]+)') do
    offers[string.match(cap, '^%s*(.-)%s*$')] = true
  end
  local auto = version_capability(version)
  if auto ~= nil then
    offers[auto] = true
  end
  for _, cap in ipairs(needed) do
    if not offers[cap] then
      return false
    end
  end
  return true
end

local loadkey = key('server_load')
local empty = true
local any_capable = not needs or #needed == 0
local matched = false -- a capable server carries a wanted tag (whether it has a hash or not)
local best, best_load, best_pos, best_rank = nil, nil, nil, nil
local untagged, untagged_rank = nil, nil -- the best untagged server with a hash

-- Whether server:<id> exists (its url is always set), asked only of a
-- server that would be chosen (most members walked are told apart by their
-- tag); its hash is kept for the reply.
local hashes = {}
local function exists(sid)
  local flat = redis.call('HGETALL', key('server:' .. sid))
  hashes[sid] = flat
  return to_table(flat)['url'] ~= nil
end

local function walk()
  -- Without tags and needs the first untagged server decides: no loads needed.
  local step = (position == nil and not needs) and 1 or 2
  local first, size = 0, 4
  while true do
    local flat
    if step == 1 then
      flat = redis.call('ZRANGE', loadkey, first, first + size - 1)
    else
      flat = redis.call('ZRANGE', loadkey, first, first + size - 1, 'WITHSCORES')
    end
    for i = 1, #flat, step do
      local load = tonumber(flat[i + 1])
      if best ~= nil and load > best_load and (best_rank == 1 or load >= capacity) then
        return
      end
      if position == nil and untagged ~= nil and (untagged_rank == 1 or load >= capacity) then
        return
      end
      local sid = flat[i]
      empty = false
      local tag, rank = nil, 1
      local eligible = true
      if needs then
        local f = redis.call('HMGET', key('server:' .. sid), 'tag', 'bbb_version')
        tag = f[1]
        local p = redis.call('HMGET', key('server_placement:' .. sid), 'region', 'capabilities')
        eligible = capable(p[2], f[2])
        if eligible then
          any_capable = true
        end
        if regions > 0 then
          local region = p[1] and string.match(p[1], '^%s*(.-)%s*$') or nil
          rank = (region ~= nil and load < capacity and region_rank[region]) or last_rank
        end
      else
        tag = redis.call('HGET', key('server:' .. sid), 'tag')
      end
      if tag == false or tag == '' then
        tag = nil
      end
      if not eligible then
        -- Not a candidate.
      elseif position == nil then
        if tag == nil and (untagged == nil or rank < untagged_rank) and exists(sid) then
          untagged, untagged_rank = sid, rank
          if rank == 1 then
            return
          end
        end
      else
        local pos = position[tag or 'none']
        if pos ~= nil then
          matched = true
          local better = best == nil or rank < best_rank or (rank == best_rank and load == best_load and pos < best_pos)
          if better and exists(sid) then
            best, best_load, best_pos, best_rank = sid, load, pos, rank
            if pos == 1 and rank == 1 then
              return
            end
          end
        elseif tag == nil and (untagged == nil or rank < untagged_rank) and exists(sid) then
          untagged, untagged_rank = sid, rank
        end
      end
    end
    if #flat < step * size then
      return
    end
    first = first + size
    size = size * 4
  end
end
walk()

if empty then
  return {'noserver'}
end
if not any_capable then
  return {'capabilityunavailable'}
end
local chosen = best
if chosen == nil and not matched then
  if ARGV[5] == '1' then
    return {'tagunavailable'}
  end
  chosen = untagged
end
if chosen == nil then
  return {'noserver'}
end

-- Voice bridge: the first candidate that is free or already ours.
local vbkey = key('voice_bridges')
local vb = nil
for i = 16, #ARGV do
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
if tmkey ~= nil then
  redis.call('SADD', tmkey, id)
end

-- The create parameters kept for re-homing, replaced with the record.
local ckey = key('meeting_create:' .. id)
local rehomed_from = ''
if replacing then
  -- At most 16 servers are remembered (the most recent ones).
  local previous = redis.call('HGET', ckey, 'rehomed_from') or ''
  local list = {}
  for sid in string.gmatch(previous, '([^;]+)') do
    if sid ~= replace_on then
      list[#list + 1] = sid
    end
  end
  list[#list + 1] = replace_on
  while #list > 16 do
    table.remove(list, 1)
  end
  rehomed_from = table.concat(list, ';')
end
redis.call('DEL', ckey)
if ARGV[10] ~= '' then
  redis.call('HSET', ckey, 'params', ARGV[10], 'origin', ARGV[11], 'server_id', chosen, 'rehomed_from', rehomed_from)
  redis.call('EXPIRE', ckey, ARGV[7])
end

local sflat = hashes[chosen]
local reserve = tonumber(ARGV[8]) * multiplier(to_table(sflat))
if reserve > 0 then
  redis.call('ZADD', key('server_load'), 'XX', 'INCR', tostring(reserve), chosen)
end
-- The meeting hash is new: exactly the fields just written.
local mfields = {'server_id', chosen, 'moderator_pw', ARGV[6], 'voice_bridge', vb, 'tenant_id', tenant}
return {
  'placed', mfields, sflat, redis.call('SISMEMBER', key('server_enabled'), chosen),
  redis.call('HGETALL', key('server_placement:' .. chosen)),
}
