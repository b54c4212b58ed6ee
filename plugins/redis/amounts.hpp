// Exact money arithmetic for redis_sum, on the SDK's decimal helpers: the totals live
// in a Lua script, whose numbers are doubles, so amounts and totals stay below 2^53 units.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include <pipehost/decimal.hpp>

namespace pipehost::redis {

// Integers of this magnitude or more are not exact in a double (nor in Lua, which keeps
// the totals in the script): amounts and totals must stay below it.
inline constexpr std::int64_t kExactLimit = std::int64_t{1} << 53;

using decimal::format_units;
using decimal::parse_units;
using decimal::pow10;

inline std::optional<std::int64_t> to_units(const Value& value, int scale, std::string& problem) {
  return decimal::to_units(value, scale, kExactLimit, problem);
}

}  // namespace pipehost::redis
