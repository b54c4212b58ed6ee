#include "loader/plugin_registry.hpp"

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>

#include <dlfcn.h>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

namespace pipehost::host {
namespace fs = std::filesystem;

namespace {
fs::path install_prefix() {
  return fs::path(boost::dll::program_location().string()).parent_path().parent_path();
}

std::string stdlib_release_of(const std::string& build_info) {
  auto at = build_info.find("libstdc++ ");
  if (at == std::string::npos) return "";
  auto start = at + 10;
  return build_info.substr(start, build_info.find(',', start) - start);
}

// Libraries are never unloaded: objects a plugin made must never outlive its code. Their
// handles stay reachable here for the life of the process, so LeakSanitizer does not
// report them as leaks.
boost::dll::shared_library& new_library() {
  static std::mutex mutex;
  static auto* const libraries = new std::deque<boost::dll::shared_library>();
  std::lock_guard lock(mutex);
  return libraries->emplace_back();
}
}  // namespace

std::vector<std::string> plugin_search_path(const std::vector<std::string>& extra) {
  std::vector<std::string> path = extra;
  if (const char* env = std::getenv("PIPEHOST_PLUGIN_PATH")) {
    std::string list = env;
    std::size_t start = 0;
    while (start <= list.size()) {
      std::size_t colon = list.find(':', start);
      std::string item = list.substr(start, colon - start);
      if (!item.empty()) path.push_back(item);
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
  }
  path.push_back((install_prefix() / "lib" / "pipehost" / "plugins").string());
  return path;
}

std::string data_directory() { return (install_prefix() / "share" / "pipehost").string(); }

void PluginRegistry::load_directories(const std::vector<std::string>& directories) {
  for (const auto& dir : directories) {
    searched_.push_back(dir);
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (entry.path().extension() == ".so") files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) load_file(f.string());
  }
}

void PluginRegistry::refuse(const std::string& file, std::string reason) {
  refused_.push_back({file, std::move(reason)});
}

void PluginRegistry::load_file(const std::string& path) {
  std::error_code ec;
  std::string canonical = fs::weakly_canonical(path, ec).string();
  if (std::find(loaded_files_.begin(), loaded_files_.end(), canonical) != loaded_files_.end())
    return;
  loaded_files_.push_back(canonical);

  auto* library = &new_library();
  std::error_code load_error;
  library->load(path, load_error,
                boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  if (load_error) {
    const char* why = dlerror();
    refuse(path, std::string("cannot be loaded: ") + (why ? why : load_error.message()));
    return;
  }
  if (!library->has("pipehost_abi_version") || !library->has("pipehost_plugin")) {
    refuse(path, "is not a pipehost plugin (it exports no pipehost_abi_version; build it with "
                 "PIPEHOST_PLUGIN from the SDK)");
    return;
  }
  std::uint32_t abi = library->get<std::uint32_t() noexcept>("pipehost_abi_version")();
  std::string build_info = library->has("pipehost_build_info")
                               ? library->get<const char*() noexcept>("pipehost_build_info")()
                               : "unknown";
  if (abi != PIPEHOST_ABI_VERSION) {
    refuse(path, "was built against plugin ABI version " + std::to_string(abi) +
                     ", this pipehost uses ABI version " + std::to_string(PIPEHOST_ABI_VERSION) +
                     " (plugin: " + build_info + "); rebuild the plugin against this pipehost's SDK");
    return;
  }
  std::string host_stdlib = std::to_string(PIPEHOST_STDLIB_RELEASE);
  // A plugin built before its layout was in its build info says nothing of it: taken as
  // built with this SDK's defaults, as it was.
  const bool layout_differs = build_info.find("cxx11 string ") != std::string::npos &&
                              build_info.find(PIPEHOST_STDLIB_LAYOUT) == std::string::npos;
  if (stdlib_release_of(build_info) != host_stdlib || layout_differs) {
    refuse(path, "was built with another C++ standard library (" + build_info +
                     "; this pipehost: " + PIPEHOST_BUILD_INFO +
                     "); rebuild it with the same compiler");
    return;
  }
  const char* describe_error = nullptr;
  const PluginSpec* spec =
      library->get<const PluginSpec*(const char**) noexcept>("pipehost_plugin")(&describe_error);
  if (!spec) {
    refuse(path, std::string("failed to describe itself: ") +
                     (describe_error ? describe_error : "unknown error"));
    return;
  }
  for (const auto& other : plugins_) {
    if (other.spec->name == spec->name) {
      refuse(path, "declares plugin '" + spec->name + "', already loaded from " + other.file +
                       "; remove one of them from the plugin path");
      return;
    }
    for (const auto& c : spec->components) {
      for (const auto& oc : other.spec->components) {
        if (c.name == oc.name && c.kind == oc.kind) {
          refuse(path, "declares " + std::string(kind_name(c.kind)) + " '" + c.name +
                           "', already declared by plugin '" + other.spec->name + "' in " +
                           other.file);
          return;
        }
      }
    }
  }
  plugins_.push_back({path, build_info, spec});
}

const LoadedPlugin* PluginRegistry::plugin_of(const ComponentSpec* component) const {
  for (const auto& p : plugins_)
    for (const auto& c : p.spec->components)
      if (&c == component) return &p;
  return nullptr;
}

const ComponentSpec* PluginRegistry::find(std::string_view name, Kind kind) const {
  for (const auto& p : plugins_)
    for (const auto& c : p.spec->components)
      if (c.name == name && c.kind == kind) return &c;
  return nullptr;
}

std::vector<std::string> PluginRegistry::names(Kind kind) const {
  std::vector<std::string> out;
  for (const auto& p : plugins_)
    for (const auto& c : p.spec->components)
      if (c.kind == kind) out.push_back(c.name);
  std::sort(out.begin(), out.end());
  return out;
}

std::string PluginRegistry::explain_missing(std::string_view name) const {
  std::string out;
  for (const auto& r : refused_) {
    std::string stem = fs::path(r.file).stem().string();
    if (stem == name || stem.find(name) != std::string::npos || name.find(stem) != std::string::npos) {
      if (!out.empty()) out += "; ";
      out += r.file + " " + r.reason;
    }
  }
  // A file need not be named after the components it declares (hello.so declaring
  // "shout"): the refused ones are named anyway, as one of them may be it.
  if (out.empty() && !refused_.empty()) {
    out = "plugin files that were refused, one of which may declare it: ";
    for (std::size_t i = 0; i < refused_.size() && i < 3; ++i)
      out += (i ? "; " : "") + refused_[i].file + " " + refused_[i].reason;
    if (refused_.size() > 3) out += "; and " + std::to_string(refused_.size() - 3) + " more (pipehost plugins)";
  }
  return out;
}

}  // namespace pipehost::host
