// Building a component from the host's validated option values, inside the plugin: the
// config struct is filled through its declaration, then the author's class is built and
// wrapped in its guard. Plugin authors never use this file directly.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "pipehost/context.hpp"
#include "pipehost/detail/boundary.hpp"
#include "pipehost/options.hpp"

namespace pipehost::detail {

// Factories return nullptr and fill `error` on failure.
using SourceFactory = std::unique_ptr<SourceStage> (*)(const Options&, Context&,
                                                       std::string& error) noexcept;
using TransformFactory = std::unique_ptr<TransformStage> (*)(const Options&, Context&,
                                                             std::string& error) noexcept;
using SinkFactory = std::unique_ptr<SinkStage> (*)(const Options&, Context&,
                                                   std::string& error) noexcept;
using RouteFactory = std::unique_ptr<RouteStage> (*)(const Options&, Context&,
                                                     std::string& error) noexcept;
using CheckFunction = void (*)(const Options&, Checker&) noexcept;

template <class Config>
std::vector<OptionSpec> declared_options() {
  OptionList<Config> list;
  Config::declare(list);
  return list.specs();
}

template <class Config>
Config filled(const Options& options) {
  OptionList<Config> list;
  Config::declare(list);
  Config config{};
  list.fill(config, options);
  return config;
}

template <class Stage, template <class> class Guard, class T>
std::unique_ptr<Stage> construct(const Options& options, Context& context,
                                 std::string& error) noexcept {
  try {
    const typename T::Config config = filled<typename T::Config>(options);
    return std::make_unique<Guard<T>>(std::make_unique<T>(config, context));
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    error = "unknown exception";
  }
  return nullptr;
}

template <class Config>
void run_check(const Options& options, Checker& checker) noexcept {
  try {
    filled<Config>(options).check(checker);
  } catch (const std::exception& e) {
    checker.problem("", e.what());
  } catch (...) {
    checker.problem("", "unknown exception in the config check");
  }
}

template <class Config>
CheckFunction check_function() {
  if constexpr (requires(const Config& c, Checker& k) { c.check(k); }) return &run_check<Config>;
  else return nullptr;
}

}  // namespace pipehost::detail
