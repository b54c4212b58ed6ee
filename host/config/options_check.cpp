#include "config/options_check.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "pipehost/detail/validate.hpp"

namespace pipehost::host {
namespace {

std::optional<std::string> scalar_text(const toml::node& node) {
  if (auto s = node.value<std::string>()) return *s;
  if (node.is_integer()) return std::to_string(*node.value<std::int64_t>());
  if (node.is_boolean()) return *node.value<bool>() ? "true" : "false";
  if (node.is_floating_point()) {  // shortest text that reads back the same: 1e-07, not "0.000000"
    char buf[32];
    return std::string(buf, std::to_chars(buf, buf + sizeof buf, *node.value<double>()).ptr);
  }
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
      if (auto s = node.value_exact<std::string>()) return std::vector<std::string>{*s};
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

}  // namespace

Options check_options(const toml::table& table, const std::vector<OptionSpec>& specs,
                      const OptionsPlace& place, Diagnostics& diagnostics) {
  Options out;
  auto report = [&](const Location& where, std::string message) {
    diagnostics.add(where, place.pipeline, place.stage, std::move(message));
  };
  // Messages from the SDK say "option"; host settings are "keys".
  auto noun = [&](std::string message) {
    if (place.noun != "option" && message.rfind("option '", 0) == 0)
      message.replace(0, 6, place.noun);
    return message;
  };
  std::vector<std::string> declared;
  for (const auto& o : specs) declared.push_back(o.name);
  std::vector<std::string> allowed_keys = declared;
  allowed_keys.insert(allowed_keys.end(), place.other_keys.begin(), place.other_keys.end());

  std::vector<std::string> present;
  for (auto&& [key, node] : table) {
    std::string name(key.str());
    present.push_back(name);
    if (std::find(place.other_keys.begin(), place.other_keys.end(), name) != place.other_keys.end())
      continue;
    auto spec = std::find_if(specs.begin(), specs.end(),
                             [&](const OptionSpec& o) { return o.name == name; });
    Location where = location_of(key.source());
    if (where.file.empty()) where = location_of(node.source());
    if (spec == specs.end()) {
      std::string hint = did_you_mean(name, allowed_keys);
      report(where, "unknown " + place.noun + " '" + name + "' " + place.owner + "; " +
                        (hint.empty() ? "" : hint + " ") +
                        (allowed_keys.empty() ? "it takes no " + place.noun + "s"
                                              : "allowed: " + join(allowed_keys)));
      continue;
    }
    if (Location at = location_of(node.source()); !at.file.empty()) where = at;
    auto value = convert(*spec, node);
    if (!value) {
      report(where, place.noun + " '" + name + "' must be " + with_article(spec->type) + ", not " +
                        describe_type(node));
      continue;
    }
    if (std::string problem = detail::value_problem(*spec, *value); !problem.empty()) {
      std::string hint;
      if (const auto* text = std::get_if<std::string>(&*value); text && !spec->allowed.empty())
        hint = did_you_mean(*text, spec->allowed);
      if (!hint.empty()) problem.replace(problem.find("; allowed"), 2, "; " + hint + " ");
      report(where, noun(problem));
      continue;
    }
    out.values[name] = std::move(*value);
  }

  for (const auto& spec : specs) {
    if (std::find(present.begin(), present.end(), spec.name) != present.end()) continue;
    if (!spec.connection.empty() && place.connections) {
      if (auto c = place.connections->find(spec.connection); c != place.connections->end()) {
        std::string problem = detail::value_problem(spec, c->second);
        if (!problem.empty())
          report(place.where, noun(problem) + " (from [connections] " + spec.connection + ")");
        else
          out.values[spec.name] = c->second;
        continue;
      }
    }
    if (spec.default_value) {
      out.values[spec.name] = *spec.default_value;
    } else if (spec.required) {
      report(place.where, place.owner_name + " needs " + place.noun + " '" + spec.name + "' (" +
                              std::string(option_type_name(spec.type)) + "): " + spec.doc +
                              (spec.connection.empty()
                                   ? ""
                                   : "; or set " + spec.connection +
                                         " under [connections] at the top of the file, for "
                                         "every stage that uses it"));
    }
  }
  return out;
}

void check_stage_options(const std::string& pipeline, StageConfig& stage,
                         const StringMap& connections, Diagnostics& diagnostics,
                         const std::vector<std::string>& host_keys) {
  const ComponentSpec& component = *stage.component;
  OptionsPlace place;
  place.pipeline = pipeline;
  place.stage = stage.label;
  place.owner = "for plugin '" + component.name + "'";
  place.owner_name = "plugin '" + component.name + "'";
  place.where = stage.where;
  place.connections = &connections;
  place.other_keys = {"plugin"};
  place.other_keys.insert(place.other_keys.end(), host_keys.begin(), host_keys.end());
  stage.options = check_options(*stage.table, component.options, place, diagnostics);
}

}  // namespace pipehost::host
