#include "config/options_check.hpp"

#include <algorithm>
#include <cmath>

namespace pipehost::host {
namespace {

std::optional<std::string> scalar_text(const toml::node& node) {
  if (auto s = node.value<std::string>()) return *s;
  if (node.is_integer()) return std::to_string(*node.value<std::int64_t>());
  if (node.is_boolean()) return *node.value<bool>() ? "true" : "false";
  if (node.is_floating_point()) return std::to_string(*node.value<double>());
  return std::nullopt;
}

std::string with_article(OptionType t) {
  return (t == OptionType::integer ? "an " : "a ") + std::string(option_type_name(t));
}

std::string describe_type(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date/time";
  }
}

// The value of `node` as the declared type, or nullopt when it has another type.
std::optional<OptionValue> convert(const OptionSpec& spec, const toml::node& node) {
  switch (spec.type) {
    case OptionType::string:
      if (auto s = node.value_exact<std::string>()) return *s;
      return std::nullopt;
    case OptionType::integer:
      if (auto i = node.value_exact<std::int64_t>()) return *i;
      return std::nullopt;
    case OptionType::number:
      if (node.is_integer()) return static_cast<double>(*node.value<std::int64_t>());
      if (auto d = node.value_exact<double>()) return *d;
      return std::nullopt;
    case OptionType::boolean:
      if (auto b = node.value_exact<bool>()) return *b;
      return std::nullopt;
    case OptionType::string_list: {
      const toml::array* a = node.as_array();
      if (!a) return std::nullopt;
      std::vector<std::string> out;
      for (const auto& item : *a) {
        auto s = item.value_exact<std::string>();
        if (!s) return std::nullopt;
        out.push_back(*s);
      }
      return out;
    }
    case OptionType::string_map: {
      const toml::table* t = node.as_table();
      if (!t) return std::nullopt;
      StringMap out;
      for (auto&& [k, v] : *t) {
        auto s = scalar_text(v);
        if (!s) return std::nullopt;
        out[std::string(k.str())] = *s;
      }
      return out;
    }
  }
  return std::nullopt;
}

std::string range_text(const OptionSpec& spec) {
  auto num = [](double d) {
    return d == std::floor(d) ? std::to_string(static_cast<long long>(d)) : std::to_string(d);
  };
  if (spec.min && spec.max) return "between " + num(*spec.min) + " and " + num(*spec.max);
  if (spec.min) return "at least " + num(*spec.min);
  return "at most " + num(*spec.max);
}

}  // namespace

void check_stage_options(const std::string& pipeline, StageConfig& stage,
                         Diagnostics& diagnostics) {
  const ComponentSpec& component = *stage.component;
  std::vector<std::string> declared;
  for (const auto& o : component.options) declared.push_back(o.name);

  std::vector<std::string> present;
  for (auto&& [key, node] : *stage.table) {
    std::string name(key.str());
    if (name == "plugin") continue;
    present.push_back(name);
    auto spec = std::find_if(component.options.begin(), component.options.end(),
                             [&](const OptionSpec& o) { return o.name == name; });
    Location where = location_of(key.source());
    if (where.file.empty()) where = location_of(node.source());
    if (spec == component.options.end()) {
      std::string hint = did_you_mean(name, declared);
      diagnostics.add(where, pipeline, stage.label,
                      "unknown option '" + name + "' for plugin '" + component.name + "'; " +
                          (hint.empty() ? "" : hint + " ") +
                          (declared.empty() ? "it takes no options"
                                            : "allowed: " + join(declared)));
      continue;
    }
    if (Location at = location_of(node.source()); !at.file.empty()) where = at;
    auto value = convert(*spec, node);
    if (!value) {
      diagnostics.add(where, pipeline, stage.label,
                      "option '" + name + "' must be " + with_article(spec->type) + ", not " +
                          describe_type(node));
      continue;
    }
    if (!spec->allowed.empty()) {
      const auto& s = std::get<std::string>(*value);
      if (std::find(spec->allowed.begin(), spec->allowed.end(), s) == spec->allowed.end()) {
        std::string hint = did_you_mean(s, spec->allowed);
        diagnostics.add(where, pipeline, stage.label,
                        "option '" + name + "' cannot be \"" + s + "\"; " +
                            (hint.empty() ? "" : hint + " ") + "allowed: " + join(spec->allowed));
        continue;
      }
    }
    if (spec->min || spec->max) {
      double d = std::holds_alternative<std::int64_t>(*value)
                     ? static_cast<double>(std::get<std::int64_t>(*value))
                     : std::holds_alternative<double>(*value) ? std::get<double>(*value) : 0.0;
      if ((spec->min && d < *spec->min) || (spec->max && d > *spec->max)) {
        diagnostics.add(where, pipeline, stage.label,
                        "option '" + name + "' must be " + range_text(*spec));
        continue;
      }
    }
    stage.options.values[name] = std::move(*value);
  }

  for (const auto& spec : component.options) {
    if (std::find(present.begin(), present.end(), spec.name) != present.end()) continue;
    if (spec.default_value) {
      stage.options.values[spec.name] = *spec.default_value;
    } else if (spec.required) {
      diagnostics.add(stage.where, pipeline, stage.label,
                      "plugin '" + component.name + "' needs option '" + spec.name + "' (" +
                          std::string(option_type_name(spec.type)) + "): " + spec.doc);
    }
  }
}

}  // namespace pipehost::host
