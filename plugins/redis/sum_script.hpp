// The Lua script that applies one batch atomically: compare every partition's stored
// position with what the sink expects, then add the per-key increments and store the
// new positions — all or nothing. Run with EVALSHA (EVAL on NOSCRIPT).
//
//   KEYS[1]        the positions hash ("<topic>:<partition>" -> next offset to read)
//   KEYS[2..]      string layout: one key per total; hash layout: the totals hash
//   ARGV[1]        "string" or "hash"
//   ARGV[2]        scale: decimals kept; totals are integers of 10^-scale units
//   ARGV[3]        P, the number of partitions in the batch, then P triples:
//                  field, expected stored value (or "none"), new value
//   then           string layout: one increment (integer units) per total key;
//                  hash layout: field, increment pairs
//
// Returns {"ok"}, or {"conflict", field, stored value or "none"} having changed nothing.
// Lua numbers are doubles: integers below 2^53 are exact, so totals are parsed from
// their decimal text into integer units, summed, checked against 2^53 and formatted back
// with exactly `scale` decimals. All reads and checks happen before the first write, so
// an error (a malformed stored total, WRONGTYPE) leaves Redis unchanged.
#pragma once

namespace pipehost::redis {

inline constexpr const char* kSumScript = R"lua(
local LIMIT = 9007199254740992 -- 2^53
local layout, scale, nparts = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local positions = KEYS[1]

for i = 0, nparts - 1 do
  local field, expected = ARGV[4 + 3 * i], ARGV[5 + 3 * i]
  local stored = redis.call('HGET', positions, field) or 'none'
  if stored ~= expected then return {'conflict', field, stored} end
end

local function to_units(text, where)
  if not text then return 0 end
  local sign, int, frac = string.match(text, '^([+-]?)(%d+)%.?(%d*)$')
  if not int then error('redis_sum: ' .. where .. ' holds "' .. text .. '", not a decimal total') end
  if #frac > scale then
    if not string.match(string.sub(frac, scale + 1), '^0*$') then
      error('redis_sum: ' .. where .. ' holds "' .. text .. '", more decimals than scale ' .. scale)
    end
    frac = string.sub(frac, 1, scale)
  end
  local units = tonumber(int .. frac .. string.rep('0', scale - #frac))
  if units >= LIMIT then error('redis_sum: ' .. where .. ' is beyond exact range (2^53 units)') end
  if sign == '-' then units = -units end
  return units
end

local function to_text(units)
  local sign = ''
  if units < 0 then sign, units = '-', -units end
  local digits = string.format('%.0f', units)
  if scale == 0 then return sign .. digits end
  if #digits <= scale then digits = string.rep('0', scale + 1 - #digits) .. digits end
  return sign .. string.sub(digits, 1, -scale - 1) .. '.' .. string.sub(digits, -scale)
end

local function add(current, delta, where)
  local d = tonumber(delta)
  if not d or d ~= math.floor(d) or math.abs(d) >= LIMIT then
    error('redis_sum: bad increment "' .. tostring(delta) .. '" for ' .. where)
  end
  local total = to_units(current, where) + d
  if math.abs(total) >= LIMIT then error('redis_sum: total of ' .. where .. ' leaves exact range (2^53 units)') end
  return to_text(total)
end

local first = 4 + 3 * nparts
local totals = {}
if layout == 'string' then
  for k = 2, #KEYS do
    totals[k] = add(redis.call('GET', KEYS[k]), ARGV[first + k - 2], KEYS[k])
  end
  for k = 2, #KEYS do redis.call('SET', KEYS[k], totals[k]) end
elseif layout == 'hash' then
  local hash = KEYS[2]
  for a = first, #ARGV, 2 do
    totals[a] = add(redis.call('HGET', hash, ARGV[a]), ARGV[a + 1], hash .. ' ' .. ARGV[a])
  end
  for a = first, #ARGV, 2 do redis.call('HSET', hash, ARGV[a], totals[a]) end
else
  error('redis_sum: unknown layout ' .. tostring(layout))
end

for i = 0, nparts - 1 do
  redis.call('HSET', positions, ARGV[4 + 3 * i], ARGV[6 + 3 * i])
end
return {'ok'}
)lua";

}  // namespace pipehost::redis
