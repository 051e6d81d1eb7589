package redis

import goredis "github.com/redis/go-redis/v9"

// The Lua scripts behind Store. Each runs atomically on the server, in one
// round trip (EVALSHA; go-redis falls back to EVAL once after a restart
// flushed the script cache), and touches only keys that share one hash tag.
//
// Times are integer microseconds since the Unix epoch (exact in a Lua
// double until the year 2255). ARGV[1] of the clocked scripts is the
// caller's time, or "" for the server's: clock() reads TIME then, and the
// script also sets key expiries. With the caller's time (ClientClock, for
// tests that walk fixed instants) no key expires: Redis expires keys by its
// own clock, which such tests do not move.
//
// Numbers written to Redis and returned as floats go through
// string.format('%.17g'), which round-trips a double exactly: a bare Lua
// number becomes an integer reply, and Lua's own tostring keeps 14 digits.

const prelude = `
local function clock(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function num(x) return string.format('%.17g', x) end
-- refill mirrors throttle.Bucket.advance: the tokens bucket k holds at now.
-- A bucket never seen is full; a clock that stepped back refills nothing.
local function refill(k, now, rate, burst)
  local h = redis.call('HMGET', k, 'tokens', 'last')
  if not h[1] then return burst end
  local tokens, last = tonumber(h[1]), tonumber(h[2])
  if now < last then last = now end
  local el = now - last
  if el > 0 and rate > 0 then tokens = tokens + el * rate / 1e6 end
  if tokens > burst then tokens = burst end
  return tokens
end
`

// takeScript: KEYS are the buckets; ARGV = now, n, then rate and burst of
// each bucket. Returns {1} when n tokens were taken from every bucket, else
// {0, index of the bucket with the longest wait (0-based), its tokens} and
// writes nothing; Go computes the wait with throttle.Wait so both drivers
// round it alike. A taken bucket expires when it would be full again (an
// expired bucket reads as full, exactly as a kept one would); a bucket that
// never refills (rate 0) never expires.
var takeScript = goredis.NewScript(prelude + `
local now, n = clock(ARGV[1]), tonumber(ARGV[2])
local toks = {}
local worst, worstWait, worstTok = 0, -1, 0
for i, k in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local t = refill(k, now, rate, burst)
  toks[i] = t
  if n > t then
    local wait = math.huge
    if n <= burst and rate > 0 then wait = (n - t) / rate end
    if wait > worstWait then worst, worstWait, worstTok = i, wait, t end
  end
end
if worst > 0 then return {0, worst - 1, num(worstTok)} end
for i, k in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local left = toks[i] - n
  redis.call('HSET', k, 'tokens', num(left), 'last', num(now))
  if ARGV[1] == '' then
    if rate > 0 then
      local ms = math.min(math.max(math.ceil((burst - left) / rate * 1000), 1), 1e15)
      redis.call('PEXPIRE', k, string.format('%d', ms))
    else
      redis.call('PERSIST', k)
    end
  end
end
return {1}
`)

// tokensScript: KEYS[1] is the bucket; ARGV = now, rate, burst. Returns the
// tokens as a string. Read-only.
var tokensScript = goredis.NewScript(prelude + `
return num(refill(KEYS[1], clock(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])))
`)

// countScript mirrors store.Counter.Count on a hash {period, first, used}.
// KEYS[1] is the counter; ARGV = period (Unix seconds), limit, offset, and
// "1" to read the server clock: then a later period starts only once the
// server's clock has reached it, so a replica whose clock runs ahead cannot
// start the next quota period early for everyone. Returns {ok, used, limit}.
// The counter never expires: it remembers the first period, where the
// offset applies.
var countScript = goredis.NewScript(`
local k = KEYS[1]
local p, limit, offset = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local h = redis.call('HMGET', k, 'period', 'first', 'used')
local period, first, used, dirty
if not h[1] then
  period, first, used, dirty = p, p, 0, true
else
  period, first, used = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])
  if p > period and (ARGV[4] ~= '1' or tonumber(redis.call('TIME')[1]) >= p) then
    period, used, dirty = p, 0, true
  end
end
local lim = limit
if period == first then lim = lim - offset end
if lim < 0 then lim = 0 end
local ok = 0
if used < lim then used, ok, dirty = used + 1, 1, true end
if dirty then
  redis.call('HSET', k, 'period', string.format('%d', period), 'first', string.format('%d', first), 'used', string.format('%d', used))
end
return {ok, used, lim}
`)

// acquireScript: KEYS[1] is the sorted set of leases (member: lease ID,
// score: expiry, +inf for none); ARGV = now, max, ttl (µs, 0 = none), ID.
// Expired leases are dropped first. Returns 1 when the lease was added.
// With the server clock, the set expires with its longest-lived lease, so a
// key whose replicas all crashed disappears.
var acquireScript = goredis.NewScript(prelude + `
local k = KEYS[1]
local now, max, ttl = clock(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', k, '-inf', num(now))
local n = redis.call('ZCARD', k)
if n >= max then return 0 end
if ttl <= 0 then
  redis.call('ZADD', k, '+inf', ARGV[4])
  redis.call('PERSIST', k)
  return 1
end
redis.call('ZADD', k, num(now + ttl), ARGV[4])
if ARGV[1] == '' then
  local ms = math.ceil(ttl / 1000)
  local cur = -2
  if n > 0 then cur = redis.call('PTTL', k) end
  if cur == -2 or (cur >= 0 and cur < ms) then
    redis.call('PEXPIRE', k, string.format('%d', ms))
  end
end
return 1
`)

// inUseScript: KEYS[1] is the lease set; ARGV = now. Counts unexpired
// leases. Read-only.
var inUseScript = goredis.NewScript(prelude + `
return redis.call('ZCOUNT', KEYS[1], '(' .. num(clock(ARGV[1])), '+inf')
`)
