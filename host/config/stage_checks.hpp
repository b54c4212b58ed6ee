// Runs each stage's own config check (the check() of its options struct): at
// `pipehost validate`, and before `run` starts a pipeline. With `connect`, checks that
// need services run too (Redis answers, the registry has the schema...).
#pragma once
#include <string>
#include <vector>

#include "config/diagnostics.hpp"
#include "config/model.hpp"
#include "pipehost/context.hpp"

namespace pipehost::host {

struct CheckServices {
  SchemaRegistry* registry = nullptr;  // null: checks that need it report it unreachable
  std::string kafka_bootstrap;         // "embedded" when the cluster is not running yet
  StringMap kafka_properties;
  std::string data_dir;
  // Set when a stage's check asked for the registry: a stage that uses it (validate
  // --connect then asks the registry whether it answers; a config with no such stage
  // does not need it).
  mutable bool registry_asked = false;
};

// Configuration problems go to `diagnostics` at the option's file:line:column; services
// that cannot be used go to `unreachable`, one line each naming the pipeline and stage.
void check_stages(const Config& config, const CheckServices& services, bool connect,
                  Diagnostics& diagnostics, std::vector<std::string>& unreachable);

}  // namespace pipehost::host
