// `pipehost run`: starts the runtime, checks every stage with its services, serves the
// admin endpoint, shows progress, turns SIGINT/SIGTERM into a drain, reports at the end.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/model.hpp"
#include "loader/plugin_registry.hpp"

namespace pipehost::host {

// A config read again for a reload, with the plugins its stages were made from (both
// live as long as the pipelines started from them).
struct LoadedConfig {
  std::unique_ptr<PluginRegistry> plugins;
  Config config;
};

struct RunOptions {
  bool progress_on_terminal = true;
  int progress_log_interval_s = 10;  // off a terminal
  std::string stats_file;            // --stats: JSON summary written at exit
  std::string admin_address;         // --admin / admin = "host:port": HTTP endpoint
  // SIGHUP: reads and validates the files again (problems printed); null when invalid.
  std::function<std::unique_ptr<LoadedConfig>()> reload;
  // --watch: these files' modification times are checked every second; a change
  // reloads as SIGHUP does.
  std::vector<std::string> watched_files;
  // Their modification times when the config was read: an edit made while the run was
  // starting is a change too (the watch began after the pipelines started, and took it
  // as its starting point).
  std::vector<std::int64_t> watched_stamps;
};

// Each file's modification time (-1 when it cannot be read), for --watch.
std::vector<std::int64_t> file_stamps(const std::vector<std::string>& files);

// Exit codes: 0 every pipeline ended (or drained after SIGINT/SIGTERM); 1 a pipeline
// failed; 2 a stage's config check failed; 3 a service could not be used.
int run_pipelines(const Config& config, const std::string& data_dir, const RunOptions& options);

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and the threads it starts): run takes
// them with sigtimedwait. Called before plugins load, so a signal that arrives while
// they do waits for the run, which then drains at once, instead of killing the process.
void block_stop_signals();

}  // namespace pipehost::host
