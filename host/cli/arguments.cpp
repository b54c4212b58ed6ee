#include "cli/arguments.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <utility>

#include "admin/host_port.hpp"
#include "log.hpp"

namespace pipehost::host {
namespace {

// The options each command takes besides --help, --log-level and --log-format: another
// command's option is refused, not ignored (`run --execute` looked like it did something).
// Empty for an option no command has (reported as unknown below).
std::string not_an_option_of(const std::string& command, const std::string& option) {
  static const std::map<std::string, std::set<std::string>> kOptions = {
      {"run", {"--env", "--set", "--plugin-path", "--pipeline", "--stats", "--admin", "--no-progress", "--watch"}},
      // run's too: a run command line validates as it is (compose files' commands).
      {"validate", {"--env", "--set", "--plugin-path", "--pipeline", "--stats", "--admin", "--no-progress", "--watch",
                    "--connect"}},
      {"plugins", {"--plugin-path", "--markdown"}},
      {"positions", {"--env", "--set", "--plugin-path", "--pipeline", "--reset-to", "--execute"}},
      {"replay", {"--env", "--set", "--plugin-path", "--pipeline", "--no-progress", "--stats"}},
      {"tap", {"--admin", "--stage", "--limit", "--timeout"}},
      {"top", {"--admin", "--interval", "--once"}},
      {"registry", {"--listen"}},
  };
  auto it = kOptions.find(command);
  if (it == kOptions.end() || it->second.count(option)) return "";
  for (const auto& [other, options] : kOptions)
    if (options.count(option))
      return "pipehost " + command + ": " + option + " is an option of " + other + ", not of " + command +
             " (see pipehost " + command + " --help)";
  return "";
}
}  // namespace

bool parse_arguments(int argc, char** argv, int first, Arguments& out) {
  if (const char* env = std::getenv("PIPEHOST_ENV")) out.load.env = env;
  const std::string command = first > 1 ? argv[first - 1] : "";
  std::string log_level, log_format;
  const std::vector<std::pair<std::string, std::function<void(std::string)>>> valued = {
      {"--env", [&](std::string v) { out.load.env = std::move(v); }},
      {"--set", [&](std::string v) { out.load.sets.push_back(std::move(v)); }},
      {"--plugin-path", [&](std::string v) { out.plugin_path.push_back(std::move(v)); }},
      {"--pipeline", [&](std::string v) { out.only_pipelines.push_back(std::move(v)); }},
      {"--stats", [&](std::string v) { out.stats_file = std::move(v); }},
      {"--admin", [&](std::string v) { out.admin = std::move(v); }},
      {"--listen", [&](std::string v) { out.listen = std::move(v); }},
      {"--log-level", [&](std::string v) { log_level = std::move(v); }},
      {"--log-format", [&](std::string v) { log_format = std::move(v); }},
      {"--stage", [&](std::string v) { out.stage = std::move(v); }},
      {"--limit", [&](std::string v) { out.limit = std::move(v); }},
      {"--timeout", [&](std::string v) { out.timeout = std::move(v); }},
      {"--reset-to", [&](std::string v) { out.reset_to = std::move(v); }},
      {"--interval", [&](std::string v) { out.interval = std::move(v); }},
  };
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (const std::string wrong = not_an_option_of(command, a.substr(0, a.find('='))); !wrong.empty()) {
      std::fprintf(stderr, "%s\n", wrong.c_str());
      return false;
    }
    if (a == "-h" || a == "--help") {
      out.help = true;
      continue;
    }
    if (a == "--no-progress") {
      out.progress = false;
      continue;
    }
    if (a == "--connect") {
      out.connect = true;
      continue;
    }
    if (a == "--markdown") {
      out.markdown = true;
      continue;
    }
    if (a == "--execute") {
      out.execute = true;
      continue;
    }
    if (a == "--once") {
      out.once = true;
      continue;
    }
    if (a == "--watch") {
      out.watch = true;
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
  for (const auto& dir : out.plugin_path) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
      std::fprintf(stderr, "pipehost: --plugin-path %s is not a folder: give the folder that holds the plugins' .so files\n",
                   dir.c_str());
      return false;
    }
  }
  if (!out.stats_file.empty()) {
    // Checked now, not when the run ends and has nowhere to write what it measured.
    const std::filesystem::path folder = std::filesystem::absolute(out.stats_file).parent_path();
    std::error_code ec;
    if (!std::filesystem::is_directory(folder, ec) || ::access(folder.c_str(), W_OK) != 0) {
      std::fprintf(stderr, "pipehost: --stats %s: cannot write in folder %s (%s): give a file in a folder that exists\n",
                   out.stats_file.c_str(), folder.c_str(),
                   std::filesystem::exists(folder, ec) ? "not writable, or not a folder" : "no such folder");
      return false;
    }
  }
  std::string admin_host;
  int admin_port = 0;
  if (!out.admin.empty() && !split_host_port(out.admin, admin_host, admin_port)) {
    std::fprintf(stderr, "pipehost: --admin %s is not HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:9464\n",
                 out.admin.c_str());
    return false;
  }
  if (!log_level.empty()) {
    LogLevel level;
    if (!parse_log_level(log_level, level)) {
      std::fprintf(stderr, "pipehost: --log-level must be debug, info, warn or error\n");
      return false;
    }
    set_log_level(level);
  }
  if (log_format == "json") set_log_format(LogFormat::json);
  else if (!log_format.empty() && log_format != "text") {
    std::fprintf(stderr, "pipehost: --log-format must be text or json\n");
    return false;
  }
  return true;
}

}  // namespace pipehost::host
