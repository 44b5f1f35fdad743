"""The Lua scripts of the Redis store: one that counts an attempt and one that reads every count a
request needs, each a single atomic EVALSHA (one round trip, and no replica can interleave).

Numbers cross as decimal strings: Lua's numbers are doubles, exact for epoch milliseconds and
attempt ids, and ``string.format('%d', x)`` keeps them out of exponent notation.
"""

# KEYS: watermark, card hash, card attempts zset, card declines zset, payment hash, decline hash,
#   then (attempts zset, approvals zset) for the route, issuer x route, BIN x route and merchant.
# ARGV: ts_ms, attempt_id, approved (1/0), nsf (1/0), amount_usd, family, response code,
#   visa category ('' if none), advice code ('' if none), history_ms, retry_horizon_ms.
# Zset members are attempt ids scored by ts_ms, so an attempt delivered twice is counted once in
# the windows (the hash totals would still count it twice).
OBSERVE = """
local ts, id = tonumber(ARGV[1]), tonumber(ARGV[2])
local approved, nsf = ARGV[3] == '1', ARGV[4] == '1'
local history, horizon = tonumber(ARGV[10]), tonumber(ARGV[11])
local function num(x) return string.format('%d', x) end

local wm = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if ts > wm then wm = ts end
redis.call('SET', KEYS[1], num(wm))

-- Expiry by event time: the key lives (newest + ttl - watermark) ms more on the Redis clock,
-- never less than it already had.
local function keep(key, newest, ttl)
  local left = newest + ttl - wm
  if left <= 0 then redis.call('DEL', key) return end
  local now = redis.call('PTTL', key)
  if now == -1 or now < left then redis.call('PEXPIRE', key, num(left)) end
end
local function window(key, hit)
  if hit then redis.call('ZADD', key, ARGV[1], ARGV[2]) end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', num(wm - history))
  local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if top[2] then keep(key, tonumber(top[2]), history) end
end
local function later(key, field, old)
  if not old or ts > tonumber(old) then redis.call('HSET', key, field, ARGV[1]) end
end

local card = KEYS[2]
local c = redis.call('HMGET', card, 'newest_ts', 'newest_id', 'newest_nsf', 'last_approval',
  'last_nsf', 'last_recovery')
local newest = not c[1] or ts > tonumber(c[1]) or (ts == tonumber(c[1]) and id > tonumber(c[2]))
if approved then
  redis.call('HINCRBY', card, 'approvals', 1)
  redis.call('HINCRBYFLOAT', card, 'approved_usd', ARGV[5])
  later(card, 'last_approval', c[4])
  if newest and c[3] == '1' then
    redis.call('HINCRBY', card, 'recoveries', 1)
    later(card, 'last_recovery', c[6])
  end
end
if nsf then later(card, 'last_nsf', c[5]) end
if newest then
  redis.call('HSET', card, 'newest_ts', ARGV[1], 'newest_id', ARGV[2], 'newest_nsf', ARGV[4])
end
window(KEYS[3], true)
window(KEYS[4], not approved)

local pay = KEYS[5]
local attempts = redis.call('HINCRBY', pay, 'attempts', 1)
local p = redis.call('HMGET', pay, 'first_decline', 'newest')
local first = p[1]
if not approved and (not first or ts < tonumber(first)) then
  first = ARGV[1]
  redis.call('HSET', pay, 'first_decline', first)
end
later(pay, 'newest', p[2])
keep(pay, math.max(ts, tonumber(p[2] or ARGV[1])), horizon)

if not approved then
  redis.call('HSET', KEYS[6], 'ts', ARGV[1], 'family', ARGV[6], 'code', ARGV[7],
    'visa', ARGV[8], 'advice', ARGV[9], 'attempts', attempts, 'first', first or '')
  keep(KEYS[6], ts, horizon)
end

for i = 7, #KEYS, 2 do
  window(KEYS[i], true)
  window(KEYS[i + 1], approved)
end
return wm
"""

# KEYS: card hash, card attempts zset, card declines zset, decline hash (any absent key for an
#   approval), then (attempts zset, approvals zset) per rate key.
# ARGV: the anchor less 24 h and less 7 d (the card windows), the anchor less the rate window,
#   the anchor (every window is (lower, anchor]).
# Returns {card totals, {attempts_24h, declines_24h, attempts_7d, declines_7d}, decline fields,
#   {attempts, approvals} flattened over the rate keys}.
COUNTS = """
local lo24, lo7, lorate, up = '(' .. ARGV[1], '(' .. ARGV[2], '(' .. ARGV[3], ARGV[4]
local card = redis.call('HMGET', KEYS[1], 'approvals', 'approved_usd', 'last_approval',
  'last_nsf', 'last_recovery', 'recoveries')
local windows = {
  redis.call('ZCOUNT', KEYS[2], lo24, up), redis.call('ZCOUNT', KEYS[3], lo24, up),
  redis.call('ZCOUNT', KEYS[2], lo7, up), redis.call('ZCOUNT', KEYS[3], lo7, up),
}
local decline = redis.call('HMGET', KEYS[4], 'ts', 'family', 'code', 'visa', 'advice',
  'attempts', 'first')
local rates = {}
for i = 5, #KEYS do rates[#rates + 1] = redis.call('ZCOUNT', KEYS[i], lorate, up) end
return {card, windows, decline, rates}
"""

__all__ = ["COUNTS", "OBSERVE"]
