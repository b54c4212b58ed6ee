// Checking option values against their declaration: shared by the host (after reading
// the TOML) and the test harness (testing.hpp), so a plugin's tests validate exactly as
// `pipehost validate` does. Plugin authors never use this file directly.
#pragma once
#include <cmath>
#include <regex>
#include <string>
#include <vector>

#include "pipehost/options.hpp"

namespace pipehost::detail {

inline bool has_type(const OptionValue& v, OptionType t) {
  switch (t) {
    case OptionType::string: return std::holds_alternative<std::string>(v);
    case OptionType::integer: return std::holds_alternative<std::int64_t>(v);
    case OptionType::number:
      return std::holds_alternative<double>(v) || std::holds_alternative<std::int64_t>(v);
    case OptionType::boolean: return std::holds_alternative<bool>(v);
    case OptionType::string_list: return std::holds_alternative<std::vector<std::string>>(v);
    case OptionType::string_map: return std::holds_alternative<StringMap>(v);
  }
  return false;
}

inline std::string number_text(double d) {
  if (d == std::floor(d) && std::fabs(d) < 9.2e18) return std::to_string(static_cast<long long>(d));
  return std::to_string(d);
}

inline std::string range_text(const OptionSpec& spec) {
  if (spec.min && spec.max) return "between " + number_text(*spec.min) + " and " + number_text(*spec.max);
  if (spec.min) return "at least " + number_text(*spec.min);
  if (spec.max) return "at most " + number_text(*spec.max);
  return "any number";
}

// Why a value of the right type is not acceptable ("" when it is): not among the
// allowed values, out of range, or not matching the pattern.
inline std::string value_problem(const OptionSpec& spec, const OptionValue& value) {
  if (const auto* s = std::get_if<std::string>(&value)) {
    if (!spec.allowed.empty()) {
      bool ok = false;
      for (const auto& a : spec.allowed) ok = ok || a == *s;
      if (!ok) {
        std::string list;
        for (const auto& a : spec.allowed) list += (list.empty() ? "" : ", ") + a;
        return "option '" + spec.name + "' cannot be \"" + *s + "\"; allowed: " + list;
      }
    }
    if (!spec.pattern.empty()) {
      try {
        if (!std::regex_match(*s, std::regex(spec.pattern)) && spec.pattern == ".+")
          return "option '" + spec.name + "' must not be empty";
        if (!std::regex_match(*s, std::regex(spec.pattern)))
          return "option '" + spec.name + "' is \"" + *s + "\", not of its form: " + spec.doc +
                 " (pattern " + spec.pattern + ")";
      } catch (const std::regex_error&) {
        return "option '" + spec.name + "' has an invalid pattern in its declaration: " + spec.pattern;
      }
    }
  }
  // TOML's inf and nan: no option means them (a rate of inf never finished its run).
  if (const auto* x = std::get_if<double>(&value); x && !std::isfinite(*x))
    return "option '" + spec.name + "' must be a finite number, not " + (std::isnan(*x) ? "nan" : "inf");
  if (spec.min || spec.max) {
    double d = 0;
    if (const auto* i = std::get_if<std::int64_t>(&value)) d = static_cast<double>(*i);
    else if (const auto* x = std::get_if<double>(&value)) d = *x;
    else return "";
    // A bound that only says what the member's type holds is not worth naming.
    const bool narrow = spec.min && spec.max && *spec.max - *spec.min < 1e9;
    if ((spec.min && d < *spec.min) || (spec.max && d > *spec.max)) {
      if (narrow) return "option '" + spec.name + "' must be " + range_text(spec);
      if (spec.min && d < *spec.min) return "option '" + spec.name + "' must be at least " + number_text(*spec.min);
      return "option '" + spec.name + "' must be at most " + number_text(*spec.max);
    }
  }
  return "";
}

}  // namespace pipehost::detail
