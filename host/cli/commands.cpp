#include "cli/commands.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "cli/help.hpp"
#include "config/build.hpp"
#include "config/document.hpp"
#include "log.hpp"
#include "loader/plugin_registry.hpp"
#include "runtime/engine.hpp"
#include "services/registry_server.hpp"

#ifndef PIPEHOST_VERSION
#define PIPEHOST_VERSION "0.0.0"
#endif

namespace pipehost::host {
namespace {

struct Arguments {
  std::vector<std::string> positional;
  LoadRequest load;
  std::vector<std::string> plugin_path;
  std::vector<std::string> only_pipelines;
  std::string stats_file;
  std::string admin;
  std::string listen;
  bool help = false;
  bool progress = true;
};

// Parses the options every command shares; false (with a message) on a bad one. Each
// option that takes a value accepts both `--name value` and `--name=value`.
bool parse_arguments(int argc, char** argv, int first, Arguments& out) {
  if (const char* env = std::getenv("PIPEHOST_ENV")) out.load.env = env;
  std::string log_level;
  const std::vector<std::pair<std::string, std::function<void(std::string)>>> valued = {
      {"--env", [&](std::string v) { out.load.env = std::move(v); }},
      {"--set", [&](std::string v) { out.load.sets.push_back(std::move(v)); }},
      {"--plugin-path", [&](std::string v) { out.plugin_path.push_back(std::move(v)); }},
      {"--pipeline", [&](std::string v) { out.only_pipelines.push_back(std::move(v)); }},
      {"--stats", [&](std::string v) { out.stats_file = std::move(v); }},
      {"--admin", [&](std::string v) { out.admin = std::move(v); }},
      {"--listen", [&](std::string v) { out.listen = std::move(v); }},
      {"--log-level", [&](std::string v) { log_level = std::move(v); }},
  };
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      out.help = true;
      continue;
    }
    if (a == "--no-progress") {
      out.progress = false;
      continue;
    }
    bool matched = false;
    for (const auto& [name, store] : valued) {
      if (a == name) {
        if (i + 1 >= argc) {
          std::fprintf(stderr, "pipehost: %s needs a value (see --help)\n", name.c_str());
          return false;
        }
        store(argv[++i]);
        matched = true;
      } else if (a.rfind(name + "=", 0) == 0) {
        store(a.substr(name.size() + 1));
        matched = true;
      }
      if (matched) break;
    }
    if (matched) continue;
    if (a.size() > 1 && a[0] == '-') {
      std::fprintf(stderr, "pipehost: unknown option %s (see --help)\n", a.c_str());
      return false;
    }
    out.positional.push_back(a);
  }
  if (!log_level.empty()) {
    LogLevel level;
    if (!parse_log_level(log_level, level)) {
      std::fprintf(stderr, "pipehost: --log-level must be debug, info, warn or error\n");
      return false;
    }
    set_log_level(level);
  }
  return true;
}

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
    if (std::find(names.begin(), names.end(), p.end_after) == names.end()) p.end_after.clear();
}

// Loads the files, the plugins they need and validates everything; false with every
// problem printed.
bool load_config(const Arguments& args, PluginRegistry& plugins, Config& config) {
  LoadRequest request = args.load;
  request.files = args.positional;
  Diagnostics diagnostics;
  auto document = load_document(request, diagnostics);
  if (!document || !diagnostics.empty()) {
    std::fputs(diagnostics.format().c_str(), stderr);
    return false;
  }
  std::vector<std::string> extra = args.plugin_path;
  for (const auto& p : plugin_path_of(*document, request.files.front())) extra.push_back(p);
  plugins.load_directories(plugin_search_path(extra));
  config = build_config(document, request.files, plugins, diagnostics);
  if (!args.only_pipelines.empty()) select_pipelines(args.only_pipelines, config, diagnostics);
  if (!diagnostics.empty()) {
    std::fputs(diagnostics.format().c_str(), stderr);
    std::fprintf(stderr, "%zu problem(s); nothing was started\n", diagnostics.size());
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
  PluginRegistry plugins;
  Config config;
  if (!load_config(args, plugins, config)) return kInvalidInput;
  if (validate_only) {
    std::string names;
    for (const auto& p : config.pipelines) names += (names.empty() ? "" : ", ") + p.name;
    std::printf("%s: valid (%zu pipeline(s): %s)\n", join(args.positional).c_str(),
                config.pipelines.size(), names.c_str());
    return kOk;
  }
  EngineOptions options;
  options.progress_on_terminal = args.progress;
  options.stats_file = args.stats_file;
  options.admin_address = args.admin.empty() ? config.admin : args.admin;
  return run_pipelines(config, data_directory(), options);
}

std::string default_text(const OptionSpec& o) {
  if (!o.default_value) return o.required ? "(required)" : "(none)";
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) return "\"" + v + "\"";
        else if constexpr (std::is_same_v<T, bool>) return v ? "true" : "false";
        else if constexpr (std::is_same_v<T, std::int64_t>) return std::to_string(v);
        else if constexpr (std::is_same_v<T, double>) {
          std::string s = std::to_string(v);
          while (s.size() > 1 && s.back() == '0' && s[s.size() - 2] != '.') s.pop_back();
          return s;
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) return "[" + join(v) + "]";
        else return "{}";
      },
      *o.default_value);
}

void print_component(const LoadedPlugin& plugin, const ComponentSpec& c) {
  std::printf("%s (%s) - %s\n  plugin %s %s, %s\n", c.name.c_str(),
              std::string(kind_name(c.kind)).c_str(), c.description.c_str(),
              plugin.spec->name.c_str(), plugin.spec->version.c_str(), plugin.file.c_str());
  std::printf("  options:\n");
  if (c.options.empty()) std::printf("    (none)\n");
  for (const auto& o : c.options) {
    std::printf("    %-24s %-16s %-14s %s", o.name.c_str(),
                std::string(option_type_name(o.type)).c_str(), default_text(o).c_str(),
                o.doc.c_str());
    if (!o.allowed.empty()) std::printf(" [one of: %s]", join(o.allowed).c_str());
    std::printf("\n");
  }
  if (!c.example.empty()) std::printf("  example:\n%s\n", c.example.c_str());
  std::printf("\n");
}

int command_plugins(const Arguments& args) {
  if (args.help) return std::fputs(help::kPlugins, stdout), kOk;
  PluginRegistry plugins;
  plugins.load_directories(plugin_search_path(args.plugin_path));
  if (!args.positional.empty()) {
    const std::string& name = args.positional.front();
    bool found = false;
    for (const auto& p : plugins.plugins())
      for (const auto& c : p.spec->components)
        if (c.name == name || p.spec->name == name) {
          print_component(p, c);
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
  if (command == "registry") {
    if (args.help) return std::fputs(help::kRegistry, stdout), kOk;
    return serve_registry(args.listen.empty() ? "127.0.0.1:8081" : args.listen);
  }
  std::string hint = did_you_mean(command, {"run", "validate", "plugins", "registry"});
  std::fprintf(stderr, "pipehost: unknown command '%s'; %s commands: run, validate, plugins (see --help)\n",
               command.c_str(), hint.c_str());
  return kInvalidInput;
}

}  // namespace pipehost::host
