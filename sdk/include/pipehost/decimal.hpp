// Exact decimal amounts for sinks that sum money: an amount becomes an integer of
// 10^-scale units, totals are sums of integers (no floating drift, and no dependence on
// the order of additions), written back as decimal text with exactly `scale` decimals.
#pragma once
#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pipehost/value.hpp"

namespace pipehost::decimal {

inline std::int64_t pow10(int scale) {  // scale in [0, 18]
  std::int64_t p = 1;
  for (int i = 0; i < scale; ++i) p *= 10;
  return p;
}

// "12.5" -> 1250 at scale 2; also "12", "+12.500", "-0.05". nullopt for anything else:
// more significant decimals than `scale`, exponents, empty parts, or a magnitude that
// does not fit 63 bits.
inline std::optional<std::int64_t> parse_units(std::string_view text, int scale) {
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

// Whether to_units rounds this double: it has more decimals than `scale` (0.004 or 10.555
// at scale 2), unlike an amount written with at most `scale` decimals, whose double is
// only next to a whole number of units (19.99 is 1998.9999999999998 cents, 0.1 + 0.2 is
// 30.000000000000004).
inline bool rounds(double x, int scale) {
  const double scaled = x * static_cast<double>(pow10(scale));
  return std::fabs(scaled - std::nearbyint(scaled)) > 4 * 2.220446049250313e-16 * std::fabs(scaled);
}

// A finite double in units of 10^-scale, |x| * 10^scale below 2^63: its shortest text (the
// decimal the producer wrote: "2.675") rounded half away from zero, so ties go the same
// way whatever their binary error (x * 100 rounded 2.675 up and 1.015 down).
inline std::int64_t round_units(double x, int scale) {
  char text[512];  // fixed notation of the smallest doubles takes ~330 characters
  auto [end, ec] = std::to_chars(text, text + sizeof text, x, std::chars_format::fixed);
  if (ec != std::errc()) return std::llround(x * static_cast<double>(pow10(scale)));
  std::string_view t(text, static_cast<std::size_t>(end - text));
  const bool negative = !t.empty() && t.front() == '-';
  if (negative) t.remove_prefix(1);
  const auto dot = t.find('.');
  const std::string_view whole = t.substr(0, dot);
  const std::string_view fraction = dot == std::string_view::npos ? std::string_view() : t.substr(dot + 1);
  std::int64_t units = 0;
  for (char c : whole) units = units * 10 + (c - '0');
  for (int i = 0; i < scale; ++i)
    units = units * 10 + (static_cast<std::size_t>(i) < fraction.size() ? fraction[static_cast<std::size_t>(i)] - '0' : 0);
  if (fraction.size() > static_cast<std::size_t>(scale) && fraction[static_cast<std::size_t>(scale)] >= '5') ++units;
  return negative ? -units : units;
}

// Why parse_units refused `text`: "has more than 2 decimals", "is out of range" (digits
// past 63 bits: a uint64 decoded as its text), "is in exponent notation", or "is not a
// decimal number".
inline std::string why_not_units(std::string_view text, int scale) {
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) text.remove_prefix(1);
  const auto dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  const std::string_view fraction = dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  auto digits = [](std::string_view x) { return x.find_first_not_of("0123456789") == std::string_view::npos; };
  if (!whole.empty() && digits(whole) && digits(fraction))
    return fraction.size() > static_cast<std::size_t>(scale) ? "has more than " + std::to_string(scale) + " decimals"
                                                              : "is out of range";
  if (text.find_first_of("eE") != std::string_view::npos && text.find_first_of("0123456789") != std::string_view::npos)
    return "is in exponent notation, not a plain decimal number";
  return "is not a decimal number";
}

// The amount in units of 10^-scale, with magnitude below `limit`: integers exactly,
// decimal strings exactly (parse_units), doubles by round_units (exact for amounts written
// with at most `scale` decimals). nullopt with `problem` filled ("is
// not a number", "is not a finite number", "is out of range") otherwise.
inline std::optional<std::int64_t> to_units(const Value& value, int scale, std::int64_t limit,
                                            std::string& problem) {
  const std::int64_t factor = pow10(scale);
  if (const auto* i = value.as<std::int64_t>()) {
    if (*i > -limit / factor && *i < limit / factor) return *i * factor;
    problem = "is out of range";
    return std::nullopt;
  }
  if (const auto* s = value.as<std::string>()) {
    auto units = parse_units(*s, scale);
    if (!units) {
      problem = why_not_units(*s, scale);
      return std::nullopt;
    }
    if (*units <= -limit || *units >= limit) {
      problem = "is out of range";
      return std::nullopt;
    }
    return units;
  }
  const double* d = value.as<double>();
  if (!d) {
    problem = value.is_null() ? "is null" : "is not a number";
    return std::nullopt;
  }
  if (!std::isfinite(*d)) {
    problem = "is not a finite number";
    return std::nullopt;
  }
  double scaled = *d * static_cast<double>(factor);
  if (!(std::fabs(scaled) < static_cast<double>(limit))) {
    problem = "is out of range";
    return std::nullopt;
  }
  // Most amounts have at most `scale` decimals: next to a whole unit, llround is exact and
  // cheaper than the shortest text.
  return rounds(*d, scale) ? round_units(*d, scale) : std::llround(scaled);
}


// total + units, or nullopt when the result's magnitude would reach `limit`.
inline std::optional<std::int64_t> add(std::int64_t total, std::int64_t units, std::int64_t limit) {
  std::int64_t sum = 0;
  if (__builtin_add_overflow(total, units, &sum) || sum <= -limit || sum >= limit)
    return std::nullopt;
  return sum;
}

// "12345.67" for 1234567 units at scale 2; "-0.05" for -5; "7" at scale 0.
inline std::string format_units(std::int64_t units, int scale) {
  // The magnitude as unsigned covers INT64_MIN too.
  std::uint64_t magnitude = units < 0 ? 0 - static_cast<std::uint64_t>(units)
                                      : static_cast<std::uint64_t>(units);
  std::string digits = std::to_string(magnitude);
  std::string sign = units < 0 ? "-" : "";
  if (scale == 0) return sign + digits;
  auto width = static_cast<std::size_t>(scale);
  if (digits.size() <= width) digits.insert(0, width + 1 - digits.size(), '0');
  return sign + digits.substr(0, digits.size() - width) + "." + digits.substr(digits.size() - width);
}

// What a summing sink says (once) when to_units rounds a double amount of `field`.
inline std::string rounding_warning(std::string_view field, double x, int scale) {
  char text[32];
  auto [end, ec] = std::to_chars(text, text + sizeof text, x);
  const std::int64_t units = round_units(x, scale);
  return "field '" + std::string(field) + "' holds " + std::string(text, ec == std::errc() ? end : text) +
         ", which has more decimals than scale = " + std::to_string(scale) + ": it is counted as " +
         format_units(units, scale) +
         " (rounded half away from zero, as written), as are others like it (metric amounts_rounded); set the "
         "sink's scale higher to keep more decimals";
}

}  // namespace pipehost::decimal
