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
-- take is Store.Take over the buckets KEYS[k0+1 .. k0+nb], whose rate and
-- burst are ARGV[a0+2i-1] and ARGV[a0+2i]. It returns 0 after taking n
-- tokens from every bucket, or, writing nothing, the position (1-based)
-- of the bucket with the longest wait and its tokens; Go computes the wait
-- with throttle.Wait so both drivers round it alike. With expire, a taken
-- bucket expires when it would be full again (an expired bucket reads as
-- full, exactly as a kept one would); one that never refills never does.
local function take(k0, nb, a0, now, n, expire)
  local toks = {}
  local worst, worstWait, worstTok = 0, -1, 0
  for i = 1, nb do
    local rate, burst = tonumber(ARGV[a0 + 2 * i - 1]), tonumber(ARGV[a0 + 2 * i])
    local t = refill(KEYS[k0 + i], now, rate, burst)
    toks[i] = t
    if n > t then
      local wait = math.huge
      if n <= burst and rate > 0 then wait = (n - t) / rate end
      if wait > worstWait then worst, worstWait, worstTok = i, wait, t end
    end
  end
  if worst > 0 then return worst, worstTok end
  for i = 1, nb do
    local k = KEYS[k0 + i]
    local rate, burst = tonumber(ARGV[a0 + 2 * i - 1]), tonumber(ARGV[a0 + 2 * i])
    local left = toks[i] - n
    redis.call('HSET', k, 'tokens', num(left), 'last', num(now))
    if expire then
      if rate > 0 then
        local ms = math.min(math.max(math.ceil((burst - left) / rate * 1000), 1), 1e15)
        redis.call('PEXPIRE', k, string.format('%d', ms))
      else
        redis.call('PERSIST', k)
      end
    end
  end
  return 0, 0
end
-- count mirrors store.Counter.Count on a hash {period, first, used}: p is
-- the period (Unix seconds). srv, when given, returns the server clock in
-- seconds: then a later period starts only once that clock has reached
-- it, so a replica whose clock runs ahead cannot start the next quota
-- period early for everyone. Returns ok (1 or 0), used, the effective
-- limit. The counter never expires: it remembers the first period, where
-- the offset applies.
local function count(k, p, limit, offset, srv)
  local h = redis.call('HMGET', k, 'period', 'first', 'used')
  local period, first, used, dirty
  if not h[1] then
    period, first, used, dirty = p, p, 0, true
  else
    period, first, used = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])
    if p > period and (not srv or srv() >= p) then
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
  return ok, used, lim
end
-- held drops the expired leases of set k and counts the rest.
local function held(k, now)
  redis.call('ZREMRANGEBYSCORE', k, '-inf', num(now))
  return redis.call('ZCARD', k)
end
-- lease adds lease id (ttl µs, 0 = none) to set k, which held n before.
-- With expire, the set expires with its longest-lived lease, so a key
-- whose replicas all crashed disappears.
local function lease(k, n, now, ttl, id, expire)
  if ttl <= 0 then
    redis.call('ZADD', k, '+inf', id)
    redis.call('PERSIST', k)
    return
  end
  redis.call('ZADD', k, num(now + ttl), id)
  if expire then
    local ms = math.ceil(ttl / 1000)
    local cur = -2
    if n > 0 then cur = redis.call('PTTL', k) end
    if cur == -2 or (cur >= 0 and cur < ms) then
      redis.call('PEXPIRE', k, string.format('%d', ms))
    end
  end
end
`

// takeScript: KEYS are the buckets; ARGV = now, n, then rate and burst of
// each bucket. Returns {1} when n tokens were taken from every bucket, else
// {0, index of the bucket with the longest wait (0-based), its tokens}.
var takeScript = goredis.NewScript(prelude + `
local w, tok = take(0, #KEYS, 2, clock(ARGV[1]), tonumber(ARGV[2]), ARGV[1] == '')
if w > 0 then return {0, w - 1, num(tok)} end
return {1}
`)

// tokensScript: KEYS[1] is the bucket; ARGV = now, rate, burst. Returns the
// tokens as a string. Read-only.
var tokensScript = goredis.NewScript(prelude + `
return num(refill(KEYS[1], clock(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])))
`)

// countScript: KEYS[1] is the counter; ARGV = period (Unix seconds),
// limit, offset, and "1" to read the server clock (see count). Returns
// {ok, used, limit}.
var countScript = goredis.NewScript(prelude + `
local srv
if ARGV[4] == '1' then srv = function() return tonumber(redis.call('TIME')[1]) end end
local ok, used, lim = count(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), srv)
return {ok, used, lim}
`)

// acquireScript: KEYS[1] is the sorted set of leases (member: lease ID,
// score: expiry, +inf for none); ARGV = now, max, ttl (µs, 0 = none), ID.
// Expired leases are dropped first. Returns 1 when the lease was added.
var acquireScript = goredis.NewScript(prelude + `
local k = KEYS[1]
local now = clock(ARGV[1])
local n = held(k, now)
if n >= tonumber(ARGV[2]) then return 0 end
lease(k, n, now, tonumber(ARGV[3]), ARGV[4], ARGV[1] == '')
return 1
`)

// admitScript is Store.Admit: take, count and lease in the gateway's
// order, stopping at the first refusal, with one clock reading.
// KEYS = the buckets, then the quota counter if any, then the lease sets.
// ARGV = now, n, number of buckets, "1" if there is a quota, its period,
// limit and offset, "1" to start periods on the server clock, lease ttl
// (µs), number of caps; then rate and burst of each bucket; then max and
// lease ID of each cap. Returns {stage, index, tokens, quota ok, used,
// limit}: stage 0 admitted (every lease added), 1 throttled (index and
// tokens of the deciding bucket), 2 over quota, 3 over the cap at index
// (no lease added).
var admitScript = goredis.NewScript(prelude + `
local now, n, nb = clock(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local expire = ARGV[1] == ''
local w, tok = take(0, nb, 10, now, n, expire)
if w > 0 then return {1, w - 1, num(tok), 0, 0, 0} end
local k, qok, used, lim = nb, 1, 0, 0
if ARGV[4] == '1' then
  k = k + 1
  local srv
  if ARGV[8] == '1' then srv = function() return math.floor(now / 1e6) end end
  qok, used, lim = count(KEYS[k], tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), srv)
  if qok == 0 then return {2, 0, '0', 0, used, lim} end
end
local ttl, nc, c0 = tonumber(ARGV[9]), tonumber(ARGV[10]), 10 + 2 * nb
local hs = {}
for j = 1, nc do
  hs[j] = held(KEYS[k + j], now)
  if hs[j] >= tonumber(ARGV[c0 + 2 * j - 1]) then return {3, j - 1, '0', qok, used, lim} end
end
for j = 1, nc do lease(KEYS[k + j], hs[j], now, ttl, ARGV[c0 + 2 * j], expire) end
return {0, 0, '0', qok, used, lim}
`)

// inUseScript: KEYS[1] is the lease set; ARGV = now. Counts unexpired
// leases. Read-only.
var inUseScript = goredis.NewScript(prelude + `
return redis.call('ZCOUNT', KEYS[1], '(' .. num(clock(ARGV[1])), '+inf')
`)
