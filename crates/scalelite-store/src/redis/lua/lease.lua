-- A lease (leader election) held by a random token with an expiry.
-- ARGV: prefix, lease name, op ('acquire' | 'renew' | 'release' | 'holder'),
--       token, ttl in milliseconds
-- Returns 1/0 for acquire, renew and release; the holder's token (or false).
local k = key(ARGV[2])
local op = ARGV[3]
local current = redis.call('GET', k)
if op == 'holder' then
  return current
end
local token = ARGV[4]
if op == 'acquire' then
  if not current then
    redis.call('SET', k, token, 'PX', ARGV[5])
    return 1
  end
  if current == token then
    redis.call('PEXPIRE', k, ARGV[5])
    return 1
  end
  return 0
end
if current ~= token then
  return 0
end
if op == 'renew' then
  redis.call('PEXPIRE', k, ARGV[5])
else
  redis.call('DEL', k)
end
return 1
