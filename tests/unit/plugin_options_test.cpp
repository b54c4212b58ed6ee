// For every installed plugin: its example validates, and unknown keys and ill-typed
// values are rejected with the right message.
#include <doctest/doctest.h>

#include "config/options_check.hpp"
#include "test_support.hpp"

using namespace pipehost;
using namespace pipehost::host;
using namespace pipehost::host::test;

namespace {

// The stage table in a component's example: the table that has a `plugin` key.
toml::table* stage_table(toml::table& t) {
  if (t.contains("plugin")) return &t;
  for (auto&& [k, v] : t) {
    if (auto* sub = v.as_table())
      if (auto* found = stage_table(*sub)) return found;
    if (auto* arr = v.as_array())
      for (auto& item : *arr)
        if (auto* sub = item.as_table())
          if (auto* found = stage_table(*sub)) return found;
  }
  return nullptr;
}

Diagnostics check(const ComponentSpec& c, toml::table& stage) {
  StageConfig s;
  s.label = "stage";
  s.plugin = c.name;
  s.table = &stage;
  s.component = &c;
  Diagnostics d;
  // A route's table also holds the route's own keys.
  std::vector<std::string> host_keys;
  if (c.kind == Kind::route) host_keys = {"path", "methods"};
  check_stage_options("p", s, {}, d, host_keys);
  return d;
}

toml::node_view<toml::node> wrong_value_for(OptionType type, toml::table& holder) {
  switch (type) {
    case OptionType::string:
    case OptionType::string_list:
    case OptionType::string_map: holder.insert_or_assign("v", 12345); break;
    case OptionType::integer:
    case OptionType::number:
    case OptionType::boolean: holder.insert_or_assign("v", "text"); break;
  }
  return holder["v"];
}

}  // namespace

TEST_CASE("every component's example validates; unknown keys and wrong types are rejected") {
  int components = 0;
  for (const auto& plugin : plugins().plugins()) {
    for (const auto& c : plugin.spec->components) {
      CAPTURE(c.name);
      REQUIRE_MESSAGE(!c.example.empty(), "component has no example: " << c.name);
      toml::table example = toml::parse(c.example, "example of " + c.name);
      toml::table* stage = stage_table(example);
      REQUIRE(stage);
      CHECK(stage->get("plugin")->value<std::string>() == c.name);
      Diagnostics ok = check(c, *stage);
      CHECK_MESSAGE(ok.empty(), ok.format());

      toml::table unknown = *stage;
      unknown.insert_or_assign("surely_not_an_option", 1);
      Diagnostics d = check(c, unknown);
      REQUIRE(d.size() == 1);
      CHECK(d.items()[0].message.find("unknown option 'surely_not_an_option' for plugin '" + c.name + "'") != std::string::npos);

      for (const auto& option : c.options) {
        CAPTURE(option.name);
        toml::table bad = *stage;
        toml::table holder;
        bad.insert_or_assign(option.name, *wrong_value_for(option.type, holder).node());
        Diagnostics wrong = check(c, bad);
        REQUIRE(wrong.size() == 1);
        const std::string& message = wrong.items()[0].message;
        CHECK(message.find("option '" + option.name + "' must be ") != std::string::npos);
        CHECK(message.find(std::string(option_type_name(option.type)) + ", not ") != std::string::npos);
      }
      ++components;
    }
  }
  CHECK(components >= 5);
}
