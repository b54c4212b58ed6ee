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
// Returns {"ok"}; or {"conflict", field, stored value or "none"}; or {"overflow", i,
// stored total or "", ...}, one pair per total (i counts from 1 in the increments'
// order) that its increment would take out of the exact range; or {"wrongtype", i,
// what it holds, ...}, one pair per total that this script cannot add to: a key (string
// layout) of another kind of value (a list, a hash: the positions hash itself), which MGET
// reads as nil and MSET would overwrite, or a stored value that is not a decimal total at
// this scale (another application's string, a total written with more decimals); all
// three having changed nothing.
// Lua numbers are doubles: integers below 2^53 are exact, so totals are parsed from
// their decimal text into integer units, summed, checked against 2^53 and formatted back
// with exactly `scale` decimals. All reads and checks happen before the first write, so
// an error (WRONGTYPE of the totals hash) leaves Redis unchanged.
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

-- A stored total's integer units; or nil and why it is not a total this script can add to.
local function to_units(text)
  local sign, int, frac = string.match(text, '^([+-]?)(%d+)%.?(%d*)$')
  if not int then return nil, 'not a decimal total' end
  if #frac > scale then
    if not string.match(string.sub(frac, scale + 1), '^0*$') then
      return nil, 'which has more decimals than scale ' .. scale
    end
    frac = string.sub(frac, 1, scale)
  end
  local units = tonumber(int .. frac .. string.rep('0', scale - #frac))
  if units >= LIMIT then return nil, 'beyond the exact range (2^53 units)' end
  if sign == '-' then units = -units end
  return units
end

local function quoted(text)
  if #text > 40 then text = string.sub(text, 1, 40) .. '...' end
  return '"' .. text .. '"'
end

local function to_text(units)
  local sign = ''
  if units < 0 then sign, units = '-', -units end
  local digits = string.format('%.0f', units)
  if scale == 0 then return sign .. digits end
  if #digits <= scale then digits = string.rep('0', scale + 1 - #digits) .. digits end
  return sign .. string.sub(digits, 1, -scale - 1) .. '.' .. string.sub(digits, -scale)
end

-- The new total's text, or nil when it would leave the exact range.
local function add(units, delta, where)
  local d = tonumber(delta)
  if not d or d ~= math.floor(d) or math.abs(d) >= LIMIT then
    error('redis_sum: bad increment "' .. tostring(delta) .. '" for ' .. where)
  end
  local total = units + d
  if math.abs(total) >= LIMIT then return nil end
  return to_text(total)
end

-- One redis.call for many keys (MGET, MSET, HMGET, HSET) instead of one per key, in
-- chunks because unpack() is bounded by Lua's stack.
local function call_chunked(head, tail)
  local out = {}
  for i = 1, #tail, 1000 do
    local args = {unpack(head)}
    for k = i, math.min(i + 999, #tail) do args[#args + 1] = tail[k] end
    local reply = redis.call(unpack(args))
    if type(reply) == 'table' then
      for _, v in ipairs(reply) do out[#out + 1] = v end
    end
  end
  return out
end

local first = 4 + 3 * nparts
local names, deltas, where = {}, {}, {}
if layout == 'string' then
  for k = 2, #KEYS do
    names[#names + 1] = KEYS[k]
    deltas[#deltas + 1] = ARGV[first + k - 2]
    where[#where + 1] = KEYS[k]
  end
elseif layout == 'hash' then
  for a = first, #ARGV, 2 do
    names[#names + 1] = ARGV[a]
    deltas[#deltas + 1] = ARGV[a + 1]
    where[#where + 1] = KEYS[2] .. ' ' .. ARGV[a]
  end
else
  error('redis_sum: unknown layout ' .. tostring(layout))
end

local head = layout == 'string' and {'MGET'} or {'HMGET', KEYS[2]}
local current = call_chunked(head, names)
local units, wrong = {}, {'wrongtype'}
for i = 1, #names do
  if current[i] then
    local why
    units[i], why = to_units(current[i])
    if not units[i] then
      wrong[#wrong + 1] = tostring(i)
      wrong[#wrong + 1] = quoted(current[i]) .. ', ' .. why
    end
  else
    units[i] = 0
    if layout == 'string' then  -- no key, or one of another kind: TYPE only for these
      local kind = redis.call('TYPE', names[i]).ok
      if kind ~= 'none' then
        wrong[#wrong + 1] = tostring(i)
        wrong[#wrong + 1] = 'a ' .. kind .. ', not a total'
      end
    end
  end
end
if #wrong > 1 then return wrong end
local writes, overflow = {}, {'overflow'}
for i = 1, #names do
  writes[2 * i - 1] = names[i]
  writes[2 * i] = add(units[i], deltas[i], where[i])
  if not writes[2 * i] then
    overflow[#overflow + 1] = tostring(i)
    overflow[#overflow + 1] = current[i] or ''
  end
end
if #overflow > 1 then return overflow end
if #writes > 0 then call_chunked(layout == 'string' and {'MSET'} or {'HSET', KEYS[2]}, writes) end

for i = 0, nparts - 1 do
  redis.call('HSET', positions, ARGV[4 + 3 * i], ARGV[6 + 3 * i])
end
return {'ok'}
)lua";

}  // namespace pipehost::redis
