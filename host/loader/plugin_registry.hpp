// Finds plugin libraries on the search path, checks their ABI before any C++ object
// crosses, and keeps them loaded for the life of the process.
#pragma once
#include <string>
#include <vector>

#include "config/catalog.hpp"

namespace pipehost::host {

struct LoadedPlugin {
  std::string file;
  std::string build_info;
  const PluginSpec* spec = nullptr;
};

struct RefusedPlugin {
  std::string file;
  std::string reason;
};

class PluginRegistry final : public ComponentCatalog {
 public:
  // Loads every *.so in each directory, in order; the same file is loaded once.
  void load_directories(const std::vector<std::string>& directories);
  void load_file(const std::string& path);

  const std::vector<LoadedPlugin>& plugins() const { return plugins_; }
  const std::vector<RefusedPlugin>& refused() const { return refused_; }
  const std::vector<std::string>& searched() const { return searched_; }
  const LoadedPlugin* plugin_of(const ComponentSpec* component) const;

  const ComponentSpec* find(std::string_view name, Kind kind) const override;
  std::vector<std::string> names(Kind kind) const override;
  std::string explain_missing(std::string_view name) const override;

 private:
  void refuse(const std::string& file, std::string reason);
  std::vector<LoadedPlugin> plugins_;
  std::vector<RefusedPlugin> refused_;
  std::vector<std::string> searched_;
  std::vector<std::string> loaded_files_;
};

// The default search path: `extra` (from --plugin-path and the config's plugin_path),
// then PIPEHOST_PLUGIN_PATH (colon-separated), then <prefix>/lib/pipehost/plugins next
// to the executable.
std::vector<std::string> plugin_search_path(const std::vector<std::string>& extra);

// <prefix>/share/pipehost next to the executable: descriptor sets and other data.
std::string data_directory();

}  // namespace pipehost::host
