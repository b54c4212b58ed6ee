// One config file's TOML text through what `pipehost validate FILE` does: load_document
// (parse, ${VAR} interpolation), plugin_path_of and build_config against the option
// specs of the real plugins, then the diagnostics as printed. Every problem must come
// back as a diagnostic; nothing may throw.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "config/build.hpp"
#include "config/document.hpp"
#include "fuzz_support.hpp"
#include "loader/plugin_registry.hpp"

namespace {

using namespace pipehost::host;

PluginRegistry* g_plugins = nullptr;  // never destroyed: plugins stay loaded, as in the host
std::string g_file;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_plugins = new PluginRegistry();
  g_plugins->load_directories({FUZZ_PLUGIN_DIR});
  FUZZ_CHECK(!g_plugins->plugins().empty());
  // load_document reads files; /dev/shm keeps that off the disk.
  std::filesystem::path dir = std::filesystem::exists("/dev/shm") ? "/dev/shm"
                                                                  : std::filesystem::temp_directory_path();
  g_file = (dir / ("pipehost-fuzz-config-" + std::to_string(::getpid()) + ".toml")).string();
  std::atexit([] { std::filesystem::remove(g_file); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  {
    std::ofstream out(g_file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    FUZZ_CHECK(out.good());
  }
  try {
    LoadRequest request;
    request.files = {g_file};
    Diagnostics diagnostics;
    auto document = load_document(request, diagnostics);
    if (document) {
      (void)plugin_path_of(*document, g_file);
      (void)build_config(document, request.files, *g_plugins, diagnostics);
    }
    for (const Diagnostic& d : diagnostics.items()) FUZZ_CHECK(!d.message.empty());
    (void)diagnostics.format();
  } catch (...) {
    pipehost::fuzz::undocumented_exception("loading and validating a config");
  }
  return 0;
}
