// Helpers shared by the host unit tests.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "config/build.hpp"
#include "config/document.hpp"
#include "loader/plugin_registry.hpp"

namespace pipehost::host::test {

inline std::string write_temp(const std::string& name, const std::string& text) {
  auto dir = std::filesystem::temp_directory_path() / ("pipehost-unit-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "env");
  auto path = dir / name;
  std::ofstream(path) << text;
  return path.string();
}

inline PluginRegistry& plugins() {
  static PluginRegistry registry = [] {
    PluginRegistry r;
    r.load_directories({PIPEHOST_PLUGIN_DIR, PIPEHOST_TEST_PLUGIN_DIR});
    return r;
  }();
  return registry;
}

struct Loaded {
  Config config;
  Diagnostics diagnostics;
  std::string text() const { return diagnostics.format(); }
};

inline Loaded load(const std::string& toml, std::vector<std::string> sets = {},
                   std::string env = "") {
  Loaded out;
  LoadRequest request;
  request.files = {write_temp("config.toml", toml)};
  request.sets = std::move(sets);
  request.env = std::move(env);
  auto document = load_document(request, out.diagnostics);
  if (!document) return out;
  out.config = build_config(document, request.files, plugins(), out.diagnostics);
  return out;
}

}  // namespace pipehost::host::test
