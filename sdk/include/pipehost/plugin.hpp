// How a plugin library declares itself: its components, each with the options struct
// it is built from. One declaration drives validation, `pipehost plugins NAME`, the
// generated docs/plugins.md and construction.
//
//   pipehost::PluginSpec describe() {
//     pipehost::PluginSpec p{"hello", "1.0.0", "Says hello"};
//     p.add_transform<Shout>("shout", "Upper-cases a string field",
//                            "[[pipelines.demo.transforms]]\nplugin = \"shout\"\nfield = \"name\"");
//     return p;
//   }
//   PIPEHOST_PLUGIN(describe)
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "pipehost/abi.hpp"
#include "pipehost/context.hpp"
#include "pipehost/detail/factory.hpp"
#include "pipehost/options.hpp"
#include "pipehost/stage.hpp"

namespace pipehost {

enum class Kind { source, transform, sink, route };

inline std::string_view kind_name(Kind k) {
  switch (k) {
    case Kind::source: return "source";
    case Kind::transform: return "transform";
    case Kind::sink: return "sink";
    case Kind::route: return "route";
  }
  return "?";
}

struct ComponentSpec {
  std::string name;  // what a config names in `plugin = "..."`
  Kind kind = Kind::source;
  std::string description;
  std::vector<OptionSpec> options;
  std::string example;  // a TOML stage table that validates, shown by `pipehost plugins NAME`
  detail::SourceFactory make_source = nullptr;
  detail::TransformFactory make_transform = nullptr;
  detail::SinkFactory make_sink = nullptr;
  detail::RouteFactory make_route = nullptr;
  detail::CheckFunction check = nullptr;  // the config struct's check(), if it has one
  // A sink that stores source positions with its data, durably (exactly-once sinks), so
  // that another process can read them: `pipehost positions` builds it with a Context
  // whose reading_positions_only() is true and asks stored_position. Sinks that keep
  // none, or keep them only in memory, leave it false and are never built for that.
  bool stores_positions = false;
};

struct PluginSpec {
  std::string name;
  std::string version;
  std::string description;
  std::vector<ComponentSpec> components = {};

  // T derives from Source and is built as T(const T::Config&, Context&).
  template <class T>
  ComponentSpec& add_source(std::string component, std::string about, std::string example = {}) {
    auto& c = add<T>(std::move(component), Kind::source, std::move(about), std::move(example));
    c.make_source = &detail::construct<SourceStage, detail::GuardedSource, T>;
    return c;
  }
  template <class T>
  ComponentSpec& add_transform(std::string component, std::string about, std::string example = {}) {
    auto& c = add<T>(std::move(component), Kind::transform, std::move(about), std::move(example));
    c.make_transform = &detail::construct<TransformStage, detail::GuardedTransform, T>;
    return c;
  }
  template <class T>
  ComponentSpec& add_sink(std::string component, std::string about, std::string example = {}) {
    auto& c = add<T>(std::move(component), Kind::sink, std::move(about), std::move(example));
    c.make_sink = &detail::construct<SinkStage, detail::GuardedSink, T>;
    return c;
  }
  // T derives from Route: an HTTP route for the [http] section of a config.
  template <class T>
  ComponentSpec& add_route(std::string component, std::string about, std::string example = {}) {
    auto& c = add<T>(std::move(component), Kind::route, std::move(about), std::move(example));
    c.make_route = &detail::construct<RouteStage, detail::GuardedRoute, T>;
    return c;
  }

 private:
  template <class T>
  ComponentSpec& add(std::string component, Kind kind, std::string about, std::string example) {
    ComponentSpec c;
    c.name = std::move(component);
    c.kind = kind;
    c.description = std::move(about);
    c.options = detail::declared_options<typename T::Config>();
    c.example = std::move(example);
    c.check = detail::check_function<typename T::Config>();
    components.push_back(std::move(c));
    return components.back();
  }
};

}  // namespace pipehost

#include "pipehost/detail/entry.hpp"
