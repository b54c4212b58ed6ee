// Exact money arithmetic: amounts become integers of 10^-scale units, so totals are
// sums of integers with no floating drift, and are written back as decimal text with
// exactly `scale` decimals.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <pipehost/value.hpp>

namespace pipehost::redis {

// Integers of this magnitude or more are not exact in a double (nor in Lua, which keeps
// the totals in the script): amounts and totals must stay below it.
inline constexpr std::int64_t kExactLimit = std::int64_t{1} << 53;

std::int64_t pow10(int scale);  // scale in [0, 18]

// The amount in units of 10^-scale: integers exactly, doubles and decimal strings as
// llround(x * 10^scale). nullopt with `problem` filled when the value is not a finite
// number or its magnitude reaches kExactLimit units.
std::optional<std::int64_t> to_units(const Value& value, int scale, std::string& problem);

// "12345.67" for 1234567 units at scale 2; "-0.05" for -5; "7" at scale 0.
std::string format_units(std::int64_t units, int scale);

// The inverse of format_units, also accepting fewer decimals ("12.5") or extra zeros.
std::optional<std::int64_t> parse_units(std::string_view text, int scale);

}  // namespace pipehost::redis
