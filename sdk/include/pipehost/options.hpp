// Declared options of a component and the validated values a component receives.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace pipehost {

enum class OptionType { string, integer, number, boolean, string_list, string_map };

inline std::string_view option_type_name(OptionType t) {
  switch (t) {
    case OptionType::string: return "string";
    case OptionType::integer: return "integer";
    case OptionType::number: return "number";
    case OptionType::boolean: return "boolean";
    case OptionType::string_list: return "list of strings";
    case OptionType::string_map: return "table of strings";
  }
  return "?";
}

using StringMap = std::map<std::string, std::string, std::less<>>;
using OptionValue =
    std::variant<std::string, std::int64_t, double, bool, std::vector<std::string>, StringMap>;

struct OptionSpec {
  std::string name;
  OptionType type = OptionType::string;
  std::optional<OptionValue> default_value;  // none and not required: the option may be absent
  bool required = false;
  std::string doc;
  std::vector<std::string> allowed;  // for strings: the only values accepted (empty: any)
  std::optional<double> min;         // for numbers and integers
  std::optional<double> max;
};

// Builders that keep declarations short and readable in a plugin.
inline OptionSpec required_option(std::string name, OptionType type, std::string doc) {
  OptionSpec s;
  s.name = std::move(name);
  s.type = type;
  s.required = true;
  s.doc = std::move(doc);
  return s;
}
inline OptionSpec option(std::string name, OptionType type, OptionValue default_value,
                         std::string doc) {
  OptionSpec s;
  s.name = std::move(name);
  s.type = type;
  s.default_value = std::move(default_value);
  s.doc = std::move(doc);
  return s;
}
inline OptionSpec optional_option(std::string name, OptionType type, std::string doc) {
  OptionSpec s;
  s.name = std::move(name);
  s.type = type;
  s.doc = std::move(doc);
  return s;
}
inline OptionSpec with_allowed(OptionSpec s, std::vector<std::string> allowed) {
  s.allowed = std::move(allowed);
  return s;
}
inline OptionSpec with_range(OptionSpec s, std::optional<double> min, std::optional<double> max) {
  s.min = min;
  s.max = max;
  return s;
}

// The values of one stage's options, validated by the host against the declaration:
// every declared option with a default is present, and each has its declared type.
class Options {
 public:
  std::map<std::string, OptionValue, std::less<>> values;

  bool has(std::string_view name) const { return values.find(name) != values.end(); }
  const std::string& string(std::string_view name) const { return get<std::string>(name); }
  std::int64_t integer(std::string_view name) const { return get<std::int64_t>(name); }
  double number(std::string_view name) const {
    const OptionValue& v = at(name);
    if (auto i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
    return std::get<double>(v);
  }
  bool boolean(std::string_view name) const { return get<bool>(name); }
  const std::vector<std::string>& strings(std::string_view name) const {
    return get<std::vector<std::string>>(name);
  }
  const StringMap& string_map(std::string_view name) const { return get<StringMap>(name); }

 private:
  const OptionValue& at(std::string_view name) const {
    auto it = values.find(name);
    if (it == values.end()) throw std::out_of_range("option '" + std::string(name) + "' is not set");
    return it->second;
  }
  template <class T>
  const T& get(std::string_view name) const {
    const OptionValue& v = at(name);
    if (auto p = std::get_if<T>(&v)) return *p;
    throw std::invalid_argument("option '" + std::string(name) + "' has another type");
  }
};

}  // namespace pipehost
