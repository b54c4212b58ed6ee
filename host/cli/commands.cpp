#include "cli/commands.hpp"

#include <httplib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "cli/admin_client.hpp"
#include "cli/arguments.hpp"
#include "cli/help.hpp"
#include "cli/reference.hpp"
#include "config/build.hpp"
#include "config/document.hpp"
#include "log.hpp"
#include "loader/plugin_registry.hpp"
#include "cli/positions_command.hpp"
#include "cli/run_command.hpp"
#include "replay/replay_source.hpp"
#include "cli/top_command.hpp"
#include "config/stage_checks.hpp"
#include "services/memory_registry.hpp"
#include "services/rest_registry.hpp"
#include "services/registry_server.hpp"

#ifndef PIPEHOST_VERSION
#define PIPEHOST_VERSION "0.0.0"
#endif

namespace pipehost::host {
namespace {

// Keeps only the named pipelines (--pipeline). An end_after naming a pipeline that is
// not run here is dropped: that pipeline then runs until stopped.
void select_pipelines(const std::vector<std::string>& names, Config& config,
                      Diagnostics& diagnostics) {
  std::vector<std::string> known;
  for (const auto& p : config.pipelines) known.push_back(p.name);
  for (const auto& n : names)
    if (std::find(known.begin(), known.end(), n) == known.end())
      diagnostics.add({"--pipeline " + n, 0, 0}, "", "",
                      "no pipeline '" + n + "'; " + did_you_mean(n, known) + " pipelines: " + join(known));
  std::erase_if(config.pipelines, [&](const PipelineConfig& p) {
    return std::find(names.begin(), names.end(), p.name) == names.end();
  });
  for (auto& p : config.pipelines)
    std::erase_if(p.end_after, [&](const std::string& after) {
      return std::find(names.begin(), names.end(), after) == names.end();
    });
}

// A reload's problems are log lines of the running process (JSON ones with
// --log-format json); before a start, compiler-style lines and how many.
void print_problems(const Diagnostics& diagnostics, bool reloading) {
  if (reloading) return log_problems(diagnostics);
  std::fputs(diagnostics.format().c_str(), stderr);
}

// Loads the files, the plugins they need and validates everything; false with every
// problem printed.
bool load_config(const Arguments& args, PluginRegistry& plugins, Config& config, bool reloading) {
  LoadRequest request = args.load;
  request.files = args.positional;
  Diagnostics diagnostics;
  auto document = load_document(request, diagnostics);
  if (!document || !diagnostics.empty()) {
    print_problems(diagnostics, reloading);
    return false;
  }
  std::vector<std::string> extra = args.plugin_path;
  for (const auto& p : plugin_path_of(*document, request.files.front())) extra.push_back(p);
  plugins.load_directories(plugin_search_path(extra));
  config = build_config(document, request.files, plugins, diagnostics);
  if (!args.only_pipelines.empty()) select_pipelines(args.only_pipelines, config, diagnostics);
  if (!diagnostics.empty()) {
    // The stages' own checks too (those needing no service), so that one run shows every
    // problem it can, not the next batch after each fix.
    CheckServices offline;
    offline.kafka_bootstrap = "embedded";
    offline.kafka_properties = config.kafka_properties;
    offline.data_dir = data_directory();
    std::vector<std::string> not_asked;
    check_stages(config, offline, false, diagnostics, not_asked);
    print_problems(diagnostics, reloading);
    if (!reloading) std::fprintf(stderr, "%zu problem(s); nothing was started\n", diagnostics.size());
    return false;
  }
  return true;
}

int command_run(const Arguments& args, bool validate_only) {
  if (args.help) return std::fputs(validate_only ? help::kValidate : help::kRun, stdout), kOk;
  if (args.positional.empty()) {
    std::fprintf(stderr, "pipehost %s: give at least one config FILE (see --help)\n",
                 validate_only ? "validate" : "run");
    return kInvalidInput;
  }
  if (!validate_only) block_stop_signals();
  std::vector<std::string> watched;  // --watch: the files, and the overlay where run reads it
  if (args.watch && !validate_only) {
    watched = args.positional;
    if (!args.load.env.empty())
      watched.push_back(
          (std::filesystem::path(args.positional.front()).parent_path() / "env" / (args.load.env + ".toml")).string());
  }
  const std::vector<std::int64_t> read_at = file_stamps(watched);  // before reading them
  PluginRegistry plugins;
  Config config;
  if (!load_config(args, plugins, config, false)) return kInvalidInput;
  if (validate_only) {
    // Each stage's own checks; with --connect, the services they need too.
    CheckServices services;
    services.kafka_bootstrap = args.connect ? config.kafka_brokers : "embedded";
    services.kafka_properties = config.kafka_properties;
    services.data_dir = data_directory();
    std::unique_ptr<SchemaRegistry> registry;
    if (args.connect) {
      registry = make_schema_registry(config.schema_registry, config.kafka_brokers == "embedded",
                                      config.kafka_brokers);
      services.registry = registry.get();
    }
    Diagnostics problems;
    std::vector<std::string> unreachable;
    check_stages(config, services, args.connect, problems, unreachable);
    // The stages ask the registry only for what records name, so no stage check reaches
    // it: a registry a stage uses (its check asked for it) is asked here. (`run` does not stop for it: a
    // decoder waits for the registry as it does for a schema id it has not seen.)
    if (auto* rest = dynamic_cast<RestSchemaRegistry*>(registry.get()); rest && services.registry_asked)
      if (Status s = rest->answers(); !s.is_ok()) unreachable.push_back(s.message());
    if (!problems.empty()) {
      std::fputs(problems.format().c_str(), stderr);
      std::fprintf(stderr, "%zu problem(s); nothing was started\n", problems.size());
      return kInvalidInput;
    }
    for (const auto& u : unreachable) std::fprintf(stderr, "pipehost: %s\n", u.c_str());
    if (!unreachable.empty()) return kServicesUnavailable;
    std::string names;
    for (const auto& p : config.pipelines) names += (names.empty() ? "" : ", ") + p.name;
    std::printf("%s: valid (%zu pipeline(s): %s)%s\n", join(args.positional).c_str(),
                config.pipelines.size(), names.c_str(),
                args.connect ? "; every service answered" : "");
    return kOk;
  }
  RunOptions options;
  options.progress_on_terminal = args.progress;
  options.stats_file = args.stats_file;
  options.admin_address = args.admin.empty() ? config.admin : args.admin;
  options.watched_files = watched;
  options.watched_stamps = read_at;
  options.reload = [args]() -> std::unique_ptr<LoadedConfig> {
    auto next = std::make_unique<LoadedConfig>();
    next->plugins = std::make_unique<PluginRegistry>();
    if (!load_config(args, *next->plugins, next->config, true)) return nullptr;
    return next;
  };
  return run_pipelines(config, data_directory(), options);
}

int command_plugins(const Arguments& args) {
  if (args.help) return std::fputs(help::kPlugins, stdout), kOk;
  PluginRegistry plugins;
  plugins.load_directories(plugin_search_path(args.plugin_path));
  if (args.markdown) return std::fputs(reference_markdown(plugins).c_str(), stdout), kOk;
  if (!args.positional.empty()) {
    const std::string& name = args.positional.front();
    bool found = false;
    for (const auto& p : plugins.plugins())
      for (const auto& c : p.spec->components)
        if (c.name == name || p.spec->name == name) {
          std::printf("%s\n", component_text(p, c).c_str());
          found = true;
        }
    if (!found) {
      std::vector<std::string> all;
      for (const auto& p : plugins.plugins())
        for (const auto& c : p.spec->components) all.push_back(c.name);
      std::string hint = did_you_mean(name, all);
      std::fprintf(stderr, "pipehost: no plugin or component '%s'; %s installed: %s\n",
                   name.c_str(), hint.c_str(), join(all).c_str());
      std::string why = plugins.explain_missing(name);
      if (!why.empty()) std::fprintf(stderr, "  %s\n", why.c_str());
      return kInvalidInput;
    }
    return kOk;
  }
  for (const auto& p : plugins.plugins()) {
    std::printf("%s %s - %s\n  %s\n", p.spec->name.c_str(), p.spec->version.c_str(),
                p.spec->description.c_str(), p.file.c_str());
    for (const auto& c : p.spec->components)
      std::printf("    %-10s %-20s %s\n", std::string(kind_name(c.kind)).c_str(), c.name.c_str(),
                  c.description.c_str());
  }
  if (plugins.plugins().empty())
    std::printf("no plugins found in: %s\n", join(plugins.searched(), ":").c_str());
  for (const auto& r : plugins.refused())
    std::printf("refused: %s %s\n", r.file.c_str(), r.reason.c_str());
  return kOk;
}

int command_positions(const Arguments& args) {
  if (args.help) return std::fputs(help::kPositions, stdout), kOk;
  if (args.positional.empty() || args.only_pipelines.size() != 1) {
    std::fputs("pipehost positions: give the config FILE and one --pipeline NAME (see --help)\n", stderr);
    return kInvalidInput;
  }
  if (args.execute && args.reset_to.empty()) {
    std::fputs("pipehost positions: --execute commits what --reset-to says: give --reset-to too\n", stderr);
    return kInvalidInput;
  }
  PluginRegistry plugins;
  Config config;
  if (!load_config(args, plugins, config, false)) return kInvalidInput;
  return positions_command(config, config.pipelines.front(), args.reset_to, args.execute);
}

// Feeds a pipeline's dead letters back through its stages (pipehost replay).
int command_replay(const Arguments& args) {
  if (args.help) return std::fputs(help::kReplay, stdout), kOk;
  if (args.positional.empty() || args.only_pipelines.size() != 1) {
    std::fputs("pipehost replay: give the config FILE and one --pipeline NAME (see --help)\n", stderr);
    return kInvalidInput;
  }
  block_stop_signals();
  PluginRegistry plugins;
  Config config;
  if (!load_config(args, plugins, config, false)) return kInvalidInput;
  const PipelineConfig& pipeline = config.pipelines.front();
  if (pipeline.on_error != ErrorPolicy::dead_letter) {
    std::fprintf(stderr, "pipehost replay: pipeline '%s' has no dead-letter topic (its on_error is not "
                 "\"dead_letter\")\n", pipeline.name.c_str());
    return kInvalidInput;
  }
  if (config.kafka_brokers == "embedded") {
    std::fputs("pipehost replay: the embedded broker lived inside the pipehost that wrote the dead "
               "letters; replay reads a real cluster ([kafka] brokers, or --env real)\n", stderr);
    return kInvalidInput;
  }
  // The pipeline as it is, reading its dead-letter topic instead of its source; records
  // that fail again go back to that topic, after the end this replay reads to.
  PipelineConfig replay = pipeline;
  replay.tasks = 1;
  replay.end_after.clear();
  replay.restart_attempts = 0;
  // Every letter was rejected once: a fix that covers only some of them must not trip the
  // error-rate breaker meant for a live source (those rejected again go back to the topic).
  replay.max_error_rate = 1.0;
  replay.source = StageConfig{};
  replay.source.label = "source";
  replay.source.plugin = "replay";
  replay.source.component = &ReplaySource::component();
  replay.source.options.values["topic"] = pipeline.dead_letter_topic;
  replay.source.options.values["group"] = pipeline.name + "-replay";
  // A kafka sink's transactions commit the offsets of the kafka source they read with:
  // the replay source is another, and the pipeline's own transactional.id would fence the
  // running pipeline. Replayed records are written at least once.
  auto exactly_once = replay.sink.options.values.find("exactly_once");
  if (replay.sink.plugin == "kafka" && exactly_once != replay.sink.options.values.end() &&
      exactly_once->second == OptionValue(true)) {
    exactly_once->second = false;
    log_info("replay: the kafka sink writes the replayed records at least once (its exactly_once "
             "transactions go with the pipeline's kafka source, not with the dead letters)");
  }
  Config replay_config = config;
  replay_config.pipelines = {replay};
  replay_config.topics.clear();
  replay_config.http = {};  // the pipeline's API is the running pipehost's, not the replay's
  RunOptions options;
  options.progress_on_terminal = args.progress;
  options.stats_file = args.stats_file;
  return run_pipelines(replay_config, data_directory(), options);
}

// Prints the records passing a stage of a running pipehost as JSON lines, through its
// admin endpoint (GET /pipelines/NAME/tap).
int command_tap(const Arguments& args) {
  if (args.help) return std::fputs(help::kTap, stdout), kOk;
  if (args.positional.size() != 1) {
    std::fputs("pipehost tap: name one pipeline, e.g. pipehost tap sums --admin 127.0.0.1:9464\n", stderr);
    return kInvalidInput;
  }
  std::string address = args.admin.empty() ? "127.0.0.1:9464" : args.admin;
  AdminClient admin = admin_client(address);
  long limit = std::atol(args.limit.c_str());
  long timeout = std::atol(args.timeout.c_str());
  if (!admin.client || limit < 1 || limit > 100000 || timeout < 1 || timeout > 3600) {
    std::fputs("pipehost tap: --admin wants HOST:PORT, --limit a number from 1 to 100000 and --timeout "
               "seconds from 1 to 3600\n", stderr);
    return kInvalidInput;
  }
  httplib::Client& client = *admin.client;
  client.set_read_timeout(std::chrono::seconds(timeout + 10));
  const httplib::Headers& headers = admin.headers;
  std::string path = "/pipelines/" + httplib::detail::encode_query_param(args.positional[0]) +
                     "/tap?stage=" + httplib::detail::encode_query_param(args.stage) +
                     "&limit=" + std::to_string(limit) + "&timeout_ms=" + std::to_string(timeout * 1000);
  std::string error_body;
  int status = 0;
  long lines = 0;
  bool write_failed = false;
  const auto started = std::chrono::steady_clock::now();
  auto result = client.Get(
      path, headers,
      [&](const httplib::Response& r) {
        status = r.status;
        return true;
      },
      [&](const char* data, std::size_t size) {
        if (status == 200) {
          lines += std::count(data, data + size, '\n');
          if (std::fwrite(data, 1, size, stdout) != size || std::fflush(stdout) != 0) {
            write_failed = true;
            return false;  // ends the request
          }
        } else {
          error_body.append(data, size);
        }
        return true;
      });
  if (write_failed) {
    std::fprintf(stderr, "pipehost tap: cannot write to stdout: %s\n", std::strerror(errno));
    return kPipelineFailed;
  }
  // The stream ended before --limit records and --timeout: the server closed it.
  const bool early = lines < limit && std::chrono::steady_clock::now() - started < std::chrono::seconds(timeout);
  if (status == 200 && (!result || early)) {
    std::fprintf(stderr, "pipehost tap: the stream ended after %ld record(s): pipeline '%s' ended, a reload "
                 "replaced it, or the process is stopping\n", lines, args.positional[0].c_str());
    return kOk;
  }
  if (!result) {
    std::fprintf(stderr, "pipehost tap: cannot reach the admin endpoint at %s (%s): is pipehost running "
                 "with --admin %s?\n", address.c_str(), httplib::to_string(result.error()).c_str(), address.c_str());
    return kServicesUnavailable;
  }
  if (status != 200) {
    std::fprintf(stderr, "pipehost tap: %d %s%s\n", status, error_body.c_str(), token_hint(status).c_str());
    return status == 401 || status == 403 || status == 404 || status == 400 ? kInvalidInput : kPipelineFailed;
  }
  return kOk;
}

}  // namespace

int main_command(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(help::kMain, stderr);
    return kInvalidInput;
  }
  std::string command = argv[1];
  if (command == "-h" || command == "--help" || command == "help") {
    if (argc > 2) {
      std::string topic = argv[2];
      if (topic == "run") return std::fputs(help::kRun, stdout), kOk;
      if (topic == "validate") return std::fputs(help::kValidate, stdout), kOk;
      if (topic == "plugins") return std::fputs(help::kPlugins, stdout), kOk;
      if (topic == "registry") return std::fputs(help::kRegistry, stdout), kOk;
      if (topic == "tap") return std::fputs(help::kTap, stdout), kOk;
      if (topic == "positions") return std::fputs(help::kPositions, stdout), kOk;
      if (topic == "top") return std::fputs(help::kTop, stdout), kOk;
      if (topic == "replay") return std::fputs(help::kReplay, stdout), kOk;
      std::fprintf(stderr, "pipehost help: no command '%s'; %s commands: run, validate, plugins, registry, tap, "
                   "positions, top, replay\n", topic.c_str(),
                   did_you_mean(topic, {"run", "validate", "plugins", "registry", "tap", "positions", "top", "replay"}).c_str());
      return kInvalidInput;
    }
    return std::fputs(help::kMain, stdout), kOk;
  }
  if (command == "--version" || command == "version") {
    std::printf("pipehost %s (plugin ABI %u, librdkafka)\n", PIPEHOST_VERSION, PIPEHOST_ABI_VERSION);
    return kOk;
  }
  Arguments args;
  if (!parse_arguments(argc, argv, 2, args)) return kInvalidInput;
  if (command == "run") return command_run(args, false);
  if (command == "validate") return command_run(args, true);
  if (command == "plugins") return command_plugins(args);
  if (command == "tap") return command_tap(args);
  if (command == "positions") return command_positions(args);
  if (command == "replay") return command_replay(args);
  if (command == "top") {
    if (args.help) return std::fputs(help::kTop, stdout), kOk;
    return top_command(args.admin.empty() ? "127.0.0.1:9464" : args.admin, std::atof(args.interval.c_str()),
                       args.once);
  }
  if (command == "registry") {
    if (args.help) return std::fputs(help::kRegistry, stdout), kOk;
    return serve_registry(args.listen.empty() ? "127.0.0.1:8081" : args.listen);
  }
  std::string hint = did_you_mean(command, {"run", "validate", "plugins", "registry", "tap", "positions", "top", "replay"});
  std::fprintf(stderr, "pipehost: unknown command '%s'; %s commands: run, validate, plugins, registry, tap, positions, top, replay (see --help)\n",
               command.c_str(), hint.c_str());
  return kInvalidInput;
}

void log_problems(const Diagnostics& diagnostics) {
  std::istringstream lines(diagnostics.format());
  for (std::string line; std::getline(lines, line);)
    if (!line.empty()) log_error(line);
}

}  // namespace pipehost::host
