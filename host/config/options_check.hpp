// Checks a table of a config file against declared options (a stage's against its
// component's, the host's own keys against config/settings.hpp) and builds the values.
#pragma once
#include <string>
#include <vector>

#include "config/diagnostics.hpp"
#include "config/model.hpp"

namespace pipehost::host {

// Where a table sits, for the messages about it.
struct OptionsPlace {
  std::string pipeline;    // "" outside pipelines
  std::string stage;       // "" outside stages
  std::string owner;       // "for plugin 'kafka'", "in pipeline", "in [kafka]"
  std::string owner_name;  // "plugin 'kafka'", "pipeline 'p'", "[kafka]"
  std::string noun = "option";  // or "key"
  Location where;          // the table's place, for what is missing from it
  const StringMap* connections = nullptr;  // [connections], for options declared as one
  std::vector<std::string> other_keys;     // keys the caller reads itself (sub-tables)
};

// Every problem goes to `diagnostics`; the result holds the valid values and defaults.
Options check_options(const toml::table& table, const std::vector<OptionSpec>& specs,
                      const OptionsPlace& place, Diagnostics& diagnostics);

// A stage's table against its component's declaration; options declared as connections
// that the stage leaves out come from `connections` (the file's [connections]).
// `host_keys`: keys of the same table the host reads itself (a route's path).
void check_stage_options(const std::string& pipeline, StageConfig& stage,
                         const StringMap& connections, Diagnostics& diagnostics,
                         const std::vector<std::string>& host_keys = {});

}  // namespace pipehost::host
