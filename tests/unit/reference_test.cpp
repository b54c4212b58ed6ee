// docs/plugins.md is generated from the declarations: it must match what the code says
// now, as librdkafka checks its CONFIGURATION.md.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/reference.hpp"
#include "loader/plugin_registry.hpp"

using namespace pipehost::host;

TEST_CASE("docs/plugins.md is what `pipehost plugins --markdown` writes now") {
  PluginRegistry plugins;
  plugins.load_directories({PIPEHOST_PLUGIN_DIR});  // the shipped plugins, not the test ones
  std::ifstream in(std::filesystem::path(PIPEHOST_SOURCE_DIR) / "docs/plugins.md");
  std::stringstream committed;
  committed << in.rdbuf();
  INFO("docs/plugins.md is stale: regenerate it with "
       "`build/bin/pipehost plugins --markdown > docs/plugins.md` and commit it");
  CHECK(committed.str() == reference_markdown(plugins));
}
