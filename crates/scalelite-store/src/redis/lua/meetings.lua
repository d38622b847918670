-- Lists every meeting record with its remaining TTL in milliseconds
-- (-1: no expiry). Members of `meetings` whose record expired are skipped.
-- ARGV: prefix
-- Returns {{id, fields, pttl}, ...}
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', key('meetings'))) do
  local mkey = key('meeting:' .. id)
  local fields = redis.call('HGETALL', mkey)
  if #fields > 0 then
    out[#out + 1] = {id, fields, redis.call('PTTL', mkey)}
  end
end
return out
