package ratelimit

import "github.com/redis/go-redis/v9"

// admitScript decides one request in one round trip: its requests_per_second and queries_per_hour
// limits (GCRA) and its concurrency slot (a lease in a sorted set), all or nothing. A request that
// any of them refuses consumes none of them.
//
//	KEYS[1] per-second GCRA state   KEYS[2] per-hour GCRA state   KEYS[3] the tenant's leases
//	ARGV[1] 1 to apply the rate limits, ARGV[2] 1 to take a lease
//	ARGV[3], ARGV[4] per-second emission interval (microseconds) and burst
//	ARGV[5], ARGV[6] per-hour emission interval (microseconds) and burst
//	ARGV[7], ARGV[8], ARGV[9] max leases, lease TTL (ms), the new lease's id
//	ARGV[10...] leases this replica released and has not removed yet: removed first
//
// A GCRA state is "<theoretical arrival time in µs> <emission interval in µs>" in Redis's clock
// (TIME), so replica clocks never matter. When the limit changes, the debt (TAT - now) is rescaled
// to the new interval: the tenant keeps the share of its bucket it had used, and a raised limit
// applies at once. The keys therefore never name the limit.
//
// It returns {allowed, refused_by (0 none, 1 second, 2 hour, 3 concurrency), second remaining,
// second reset µs, second retry µs, hour remaining, hour reset µs, hour retry µs, leases held}.
var admitScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local res = {1, 0, 0, 0, 0, 0, 0, 0, 0}

if #ARGV > 9 then
  redis.call('ZREM', KEYS[3], unpack(ARGV, 10))
end

local function gcra(key, interval, burst)
  local tat = now
  local v = redis.call('GET', key)
  if v then
    local st, si = string.match(v, '^(%d+) (%S+)$')
    st, si = tonumber(st), tonumber(si)
    if st and si and si > 0 and st > now then
      tat = now + (st - now) * interval / si
    end
  end
  local new_tat = tat + interval
  local allow_at = new_tat - interval * burst
  if allow_at > now then
    return false, tat, 0, tat - now, allow_at - now
  end
  return true, new_tat, math.floor((now - allow_at) / interval), new_tat - now, 0
end

local rate = ARGV[1] == '1'
local si, sb, hi, hb, stat, htat
if rate then
  si, sb, hi, hb = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  local ok
  ok, stat, res[3], res[4], res[5] = gcra(KEYS[1], si, sb)
  if not ok then res[1], res[2] = 0, 1 return res end
  ok, htat, res[6], res[7], res[8] = gcra(KEYS[2], hi, hb)
  if not ok then res[1], res[2] = 0, 2 return res end
end

if ARGV[2] == '1' then
  local key, max, ttl = KEYS[3], tonumber(ARGV[7]), tonumber(ARGV[8])
  local now_ms = math.floor(now / 1000)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms)
  local n = redis.call('ZCARD', key)
  res[9] = n
  if n >= max then res[1], res[2] = 0, 3 return res end
  redis.call('ZADD', key, now_ms + ttl, ARGV[9])
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
  res[9] = n + 1
end

if rate then
  redis.call('SET', KEYS[1], string.format('%.0f %.17g', stat, si), 'PX', math.ceil((stat - now) / 1000) + 1)
  redis.call('SET', KEYS[2], string.format('%.0f %.17g', htat, hi), 'PX', math.ceil((htat - now) / 1000) + 1)
end
return res
`)

// Indexes of admitScript's reply.
const (
	replyAllowed = iota
	replyRefusedBy
	replySecondRemaining
	replySecondReset
	replySecondRetry
	replyHourRemaining
	replyHourReset
	replyHourRetry
	replyLeases
	replyLen
)

// Values of reply[replyRefusedBy].
const (
	refusedBySecond      = 1
	refusedByHour        = 2
	refusedByConcurrency = 3
)

// renewScript extends the leases ARGV[2...] of one tenant to ARGV[1] ms from now, but only those
// that still exist and have not expired: it never brings back a lease that was released or expired,
// as its slot may already be someone else's. It returns how many it renewed.
var renewScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key, ttl = KEYS[1], tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
local args = {}
for i = 2, #ARGV do
  args[#args + 1] = now + ttl
  args[#args + 1] = ARGV[i]
end
local n = redis.call('ZADD', key, 'XX', 'CH', unpack(args))
if n > 0 and redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
return n
`)

// inFlightScript counts the leases that have not expired.
var inFlightScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], string.format('(%d', now), '+inf')
`)
