// A component's options, declared once by binding each to a member of its config struct:
//
//   struct ShoutConfig {
//     std::string field;
//     int times = 1;
//     static void declare(pipehost::OptionList<ShoutConfig>& o) {
//       o.required("field", &ShoutConfig::field, "the field to upper-case");
//       o.add("times", &ShoutConfig::times, "how many times").range(1, 10);
//     }
//   };
//
// The declaration is all the host needs: it validates a stage's table against it (type,
// required, allowed values, range, pattern), prints it (`pipehost plugins NAME`, the
// generated docs/plugins.md) and the component receives the filled struct. Defaults are
// the members' initial values; a std::optional member is absent unless set.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
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

// What the host knows of one option: everything it validates and documents.
struct OptionSpec {
  std::string name;
  OptionType type = OptionType::string;
  std::optional<OptionValue> default_value;  // none and not required: the option may be absent
  bool required = false;
  std::string doc;
  std::vector<std::string> allowed;  // strings: the only values accepted (empty: any)
  std::optional<double> min;         // numbers and integers
  std::optional<double> max;
  std::string pattern;     // strings: an ECMAScript regular expression the whole value matches
  std::string connection;  // when the stage leaves it out: the top-level [connections] entry
};

// The validated values of one stage, as the host hands them to the plugin.
struct Options {
  std::map<std::string, OptionValue, std::less<>> values;
  bool has(std::string_view name) const { return values.find(name) != values.end(); }
};

namespace detail {

template <class T> struct is_optional : std::false_type {};
template <class T> struct is_optional<std::optional<T>> : std::true_type {};
template <class T> struct unoptional { using type = T; };
template <class T> struct unoptional<std::optional<T>> { using type = T; };

template <class T>
constexpr OptionType option_type_of() {
  if constexpr (std::is_same_v<T, std::string>) return OptionType::string;
  else if constexpr (std::is_same_v<T, bool>) return OptionType::boolean;
  else if constexpr (std::is_integral_v<T>) return OptionType::integer;
  else if constexpr (std::is_floating_point_v<T>) return OptionType::number;
  else if constexpr (std::is_same_v<T, std::vector<std::string>>) return OptionType::string_list;
  else if constexpr (std::is_same_v<T, StringMap>) return OptionType::string_map;
  else static_assert(!sizeof(T), "an option is a string, bool, integer, floating point, "
                                 "std::vector<std::string> or pipehost::StringMap");
}

template <class T>
OptionValue to_option_value(const T& v) {
  if constexpr (std::is_same_v<T, bool>) return v;
  else if constexpr (std::is_integral_v<T>) return static_cast<std::int64_t>(v);
  else if constexpr (std::is_floating_point_v<T>) return static_cast<double>(v);
  else return v;
}

// The host validated the type; integers are accepted where numbers are declared.
template <class T>
T from_option_value(const OptionValue& v) {
  if constexpr (std::is_same_v<T, bool>) return std::get<bool>(v);
  else if constexpr (std::is_integral_v<T>) return static_cast<T>(std::get<std::int64_t>(v));
  else if constexpr (std::is_floating_point_v<T>) {
    if (auto i = std::get_if<std::int64_t>(&v)) return static_cast<T>(*i);
    return static_cast<T>(std::get<double>(v));
  } else return std::get<T>(v);
}

}  // namespace detail

// Refines the option just declared: o.add(...).one_of({"a", "b"}).
class OptionBuilder {
 public:
  explicit OptionBuilder(OptionSpec& spec) : spec_(spec) {}
  OptionBuilder& one_of(std::vector<std::string> values) {
    spec_.allowed = std::move(values);
    return *this;
  }
  OptionBuilder& range(std::optional<double> min, std::optional<double> max) {
    spec_.min = min;
    spec_.max = max;
    return *this;
  }
  OptionBuilder& at_least(double min) { return range(min, spec_.max); }
  OptionBuilder& pattern(std::string regex) {
    spec_.pattern = std::move(regex);
    return *this;
  }
  // Left out of the stage, the value comes from [connections].<name> at the top of the
  // file, so one environment overlay of connection facts serves every pipeline.
  OptionBuilder& connection(std::string name) {
    spec_.connection = std::move(name);
    return *this;
  }

 private:
  OptionSpec& spec_;
};

template <class Config>
class OptionList {
 public:
  // An option the stage may leave out: the member's initial value is its default.
  template <class M>
  OptionBuilder add(std::string name, M Config::*member, std::string doc) {
    return bind(std::move(name), member, std::move(doc), false);
  }
  // An option the stage must set (or take from its connection).
  template <class M>
  OptionBuilder required(std::string name, M Config::*member, std::string doc) {
    return bind(std::move(name), member, std::move(doc), true);
  }

  const std::vector<OptionSpec>& specs() const { return specs_; }

  // Sets each member whose option has a value.
  void fill(Config& config, const Options& options) const {
    for (std::size_t i = 0; i < specs_.size(); ++i) {
      auto it = options.values.find(specs_[i].name);
      if (it != options.values.end()) setters_[i](config, it->second);
    }
  }

 private:
  template <class M>
  OptionBuilder bind(std::string name, M Config::*member, std::string doc, bool required) {
    using T = typename detail::unoptional<M>::type;
    OptionSpec s;
    s.name = std::move(name);
    s.type = detail::option_type_of<T>();
    s.doc = std::move(doc);
    s.required = required;
    const M& initial = defaults_.*member;
    if constexpr (detail::is_optional<M>::value) {
      if (initial) s.default_value = detail::to_option_value(*initial);
    } else if (!required) {
      s.default_value = detail::to_option_value(initial);
    }
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      // A narrower or unsigned member bounds the values it can hold.
      if constexpr (std::numeric_limits<T>::min() > std::numeric_limits<std::int64_t>::min())
        s.min = static_cast<double>(std::numeric_limits<T>::min());
      if constexpr (std::numeric_limits<T>::max() < std::numeric_limits<std::int64_t>::max())
        s.max = static_cast<double>(std::numeric_limits<T>::max());
    }
    specs_.push_back(std::move(s));
    setters_.push_back([member](Config& c, const OptionValue& v) {
      c.*member = detail::from_option_value<T>(v);
    });
    return OptionBuilder(specs_.back());
  }

  Config defaults_{};
  std::vector<OptionSpec> specs_;
  std::vector<std::function<void(Config&, const OptionValue&)>> setters_;
};

// The config of a component that takes no options.
struct NoOptions {
  static void declare(OptionList<NoOptions>&) {}
};

}  // namespace pipehost
