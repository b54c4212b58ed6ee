#include <doctest/doctest.h>

#include <filesystem>

#include "test_support.hpp"

using namespace pipehost;
using namespace pipehost::host;
namespace fs = std::filesystem;

namespace {
const RefusedPlugin* refused(const PluginRegistry& r, const std::string& stem) {
  for (const auto& x : r.refused())
    if (fs::path(x.file).stem() == stem) return &x;
  return nullptr;
}
}  // namespace

TEST_CASE("a plugin built against another ABI is refused, naming the file and both versions") {
  PluginRegistry r;
  r.load_directories({PIPEHOST_TEST_PLUGIN_DIR});
  const RefusedPlugin* bad = refused(r, "bad_abi");
  REQUIRE(bad);
  CHECK(bad->file.find("bad_abi.so") != std::string::npos);
  CHECK(bad->reason.find("ABI version 1,") != std::string::npos);
  CHECK(bad->reason.find("ABI version " + std::to_string(PIPEHOST_ABI_VERSION)) != std::string::npos);
  CHECK(bad->reason.find("rebuild") != std::string::npos);
  CHECK(r.find("faulty", Kind::source) != nullptr);
  // A config naming it hears why it is missing.
  CHECK(r.explain_missing("bad_abi").find("ABI version 1,") != std::string::npos);
}

TEST_CASE("a library that is not a plugin, and a duplicate plugin, are refused with reasons") {
  auto dir = fs::temp_directory_path() / ("pipehost-loader-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(fs::path(PIPEHOST_PLUGIN_DIR) / "log.so", dir / "log_copy.so",
                fs::copy_options::overwrite_existing);
  std::ofstream(dir / "garbage.so") << "not an ELF file";
  PluginRegistry r;
  r.load_directories({PIPEHOST_PLUGIN_DIR, dir.string()});
  REQUIRE(refused(r, "log_copy"));
  CHECK(refused(r, "log_copy")->reason.find("declares plugin 'log', already loaded from") != std::string::npos);
  REQUIRE(refused(r, "garbage"));
  CHECK(refused(r, "garbage")->reason.find("cannot be loaded") != std::string::npos);
  CHECK(r.find("log", Kind::sink) != nullptr);
  fs::remove_all(dir);
}

TEST_CASE("the same file reached twice is loaded once") {
  PluginRegistry r;
  r.load_directories({PIPEHOST_PLUGIN_DIR, PIPEHOST_PLUGIN_DIR});
  CHECK(r.refused().empty());
  CHECK(r.find("datagen", Kind::source) != nullptr);
}
