// How a plugin library declares itself. One declaration drives config validation,
// `pipehost plugins NAME` and the generated docs.
//
//   pipehost::PluginSpec describe() {
//     pipehost::PluginSpec p{"hello", "1.0.0", "Says hello"};
//     p.add_source<HelloSource>("hello", "Emits greetings", {
//         pipehost::option("count", pipehost::OptionType::integer, std::int64_t{10}, "how many")});
//     return p;
//   }
//   PIPEHOST_PLUGIN(describe)
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "pipehost/abi.hpp"
#include "pipehost/context.hpp"
#include "pipehost/options.hpp"
#include "pipehost/stage.hpp"

namespace pipehost {

enum class Kind { source, transform, sink };

inline std::string_view kind_name(Kind k) {
  switch (k) {
    case Kind::source: return "source";
    case Kind::transform: return "transform";
    case Kind::sink: return "sink";
  }
  return "?";
}

// Factories run in the plugin: they build the author's class and wrap it in a guard.
// On failure they return nullptr and fill `error`.
using SourceFactory = std::unique_ptr<SourceStage> (*)(const Options&, Context&,
                                                       std::string& error) noexcept;
using TransformFactory = std::unique_ptr<TransformStage> (*)(const Options&, Context&,
                                                             std::string& error) noexcept;
using SinkFactory = std::unique_ptr<SinkStage> (*)(const Options&, Context&,
                                                   std::string& error) noexcept;

struct ComponentSpec {
  std::string name;  // what a config names in `plugin = "..."`
  Kind kind = Kind::source;
  std::string description;
  std::vector<OptionSpec> options;
  std::string example;  // a TOML stage table that validates, shown by `pipehost plugins NAME`
  SourceFactory make_source = nullptr;
  TransformFactory make_transform = nullptr;
  SinkFactory make_sink = nullptr;
};

namespace detail {
template <class Stage, template <class> class Guard, class T>
std::unique_ptr<Stage> construct(const Options& options, Context& context,
                                 std::string& error) noexcept {
  try {
    return std::make_unique<Guard<T>>(std::make_unique<T>(options, context));
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    error = "unknown exception";
  }
  return nullptr;
}
}  // namespace detail

struct PluginSpec {
  std::string name;
  std::string version;
  std::string description;
  std::vector<ComponentSpec> components = {};

  // T is constructed as T(const Options&, Context&).
  template <class T>
  ComponentSpec& add_source(std::string component, std::string about,
                            std::vector<OptionSpec> options, std::string example = {}) {
    auto& c = add(std::move(component), Kind::source, std::move(about), std::move(options),
                  std::move(example));
    c.make_source = &detail::construct<SourceStage, detail::GuardedSource, T>;
    return c;
  }
  template <class T>
  ComponentSpec& add_transform(std::string component, std::string about,
                               std::vector<OptionSpec> options, std::string example = {}) {
    auto& c = add(std::move(component), Kind::transform, std::move(about), std::move(options),
                  std::move(example));
    c.make_transform = &detail::construct<TransformStage, detail::GuardedTransform, T>;
    return c;
  }
  template <class T>
  ComponentSpec& add_sink(std::string component, std::string about,
                          std::vector<OptionSpec> options, std::string example = {}) {
    auto& c = add(std::move(component), Kind::sink, std::move(about), std::move(options),
                  std::move(example));
    c.make_sink = &detail::construct<SinkStage, detail::GuardedSink, T>;
    return c;
  }

 private:
  ComponentSpec& add(std::string component, Kind kind, std::string about,
                     std::vector<OptionSpec> options, std::string example) {
    ComponentSpec c;
    c.name = std::move(component);
    c.kind = kind;
    c.description = std::move(about);
    c.options = std::move(options);
    c.example = std::move(example);
    components.push_back(std::move(c));
    return components.back();
  }
};

}  // namespace pipehost

// The three symbols every plugin exports. The host reads pipehost_abi_version and
// pipehost_build_info (plain C types) before it touches pipehost_plugin.
#define PIPEHOST_PLUGIN(describe_fn)                                                   \
  extern "C" PIPEHOST_EXPORT std::uint32_t pipehost_abi_version() noexcept {           \
    return PIPEHOST_ABI_VERSION;                                                       \
  }                                                                                    \
  extern "C" PIPEHOST_EXPORT const char* pipehost_build_info() noexcept {              \
    return PIPEHOST_BUILD_INFO;                                                        \
  }                                                                                    \
  extern "C" PIPEHOST_EXPORT const ::pipehost::PluginSpec* pipehost_plugin(            \
      const char** error) noexcept {                                                   \
    try {                                                                              \
      static const ::pipehost::PluginSpec spec = describe_fn();                        \
      return &spec;                                                                    \
    } catch (const std::exception& e) {                                                \
      static std::string message;                                                      \
      message = e.what();                                                              \
      *error = message.c_str();                                                        \
    } catch (...) {                                                                    \
      *error = "unknown exception while describing the plugin";                        \
    }                                                                                  \
    return nullptr;                                                                    \
  }
