#include "amounts.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace pipehost::redis {

std::int64_t pow10(int scale) {
  std::int64_t p = 1;
  for (int i = 0; i < scale; ++i) p *= 10;
  return p;
}

std::optional<std::int64_t> to_units(const Value& value, int scale, std::string& problem) {
  const std::int64_t factor = pow10(scale);
  if (const auto* i = value.as<std::int64_t>()) {
    // Exact for integers: no round trip through a double.
    if (*i > -kExactLimit / factor && *i < kExactLimit / factor) return *i * factor;
    problem = "is out of the exact range";
    return std::nullopt;
  }
  std::optional<double> number = value.to_number();
  if (!number) {
    problem = value.is_null() ? "is null" : "is not a number";
    return std::nullopt;
  }
  if (!std::isfinite(*number)) {
    problem = "is not a finite number";
    return std::nullopt;
  }
  double scaled = *number * static_cast<double>(factor);
  if (!(std::fabs(scaled) < static_cast<double>(kExactLimit))) {
    problem = "is out of the exact range";
    return std::nullopt;
  }
  return std::llround(scaled);
}

std::string format_units(std::int64_t units, int scale) {
  // |units| < 2^63 always; take the magnitude as unsigned to cover INT64_MIN too.
  std::uint64_t magnitude = units < 0 ? 0 - static_cast<std::uint64_t>(units)
                                      : static_cast<std::uint64_t>(units);
  std::string digits = std::to_string(magnitude);
  std::string sign = units < 0 ? "-" : "";
  if (scale == 0) return sign + digits;
  auto width = static_cast<std::size_t>(scale);
  if (digits.size() <= width) digits.insert(0, width + 1 - digits.size(), '0');
  return sign + digits.substr(0, digits.size() - width) + "." + digits.substr(digits.size() - width);
}

std::optional<std::int64_t> parse_units(std::string_view text, int scale) {
  bool negative = false;
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  std::string_view whole = text, frac;
  if (auto dot = text.find('.'); dot != std::string_view::npos) {
    whole = text.substr(0, dot);
    frac = text.substr(dot + 1);
  }
  auto width = static_cast<std::size_t>(scale);
  if (frac.size() > width) {
    if (frac.substr(width).find_first_not_of('0') != std::string_view::npos) return std::nullopt;
    frac = frac.substr(0, width);
  }
  std::string digits = std::string(whole) + std::string(frac) + std::string(width - frac.size(), '0');
  if (whole.empty() || digits.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  std::int64_t units = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), units);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return negative ? -units : units;
}

}  // namespace pipehost::redis
