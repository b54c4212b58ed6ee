// Runs every pipeline of a config in one process until they end or a signal asks
// them to stop; shows progress; returns the process exit code.
#pragma once
#include <string>

#include "config/model.hpp"

namespace pipehost::host {

struct EngineOptions {
  bool progress_on_terminal = true;
  int progress_log_interval_s = 10;  // off a terminal
  std::string stats_file;            // --stats: JSON summary written at exit
  std::string admin_address;         // --admin / admin = "host:port": HTTP endpoint
};

// Exit codes: 0 every pipeline ended (or drained after SIGINT/SIGTERM); 1 a pipeline
// failed; 3 the services could not start (broker, registry).
int run_pipelines(const Config& config, const std::string& data_dir, const EngineOptions& options);

}  // namespace pipehost::host
