// The command line's options, parsed once for every command.
#pragma once
#include <string>
#include <vector>

#include "config/document.hpp"

namespace pipehost::host {

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
  bool connect = false;        // validate --connect: the stages' service checks too
  bool markdown = false;       // plugins --markdown: the reference as docs/plugins.md
  std::string stage = "sink";  // tap --stage
  std::string limit = "10";    // tap --limit
  std::string timeout = "30";  // tap --timeout (seconds)
  std::string reset_to;        // positions --reset-to
  bool execute = false;        // positions --execute
  bool once = false;           // top --once
  bool watch = false;          // run --watch
  std::string interval = "1";  // top --interval (seconds)
};

// Parses the options every command shares from argv[first]; false (with a message) on
// a bad one. Each option that takes a value accepts both `--name value` and `--name=value`.
bool parse_arguments(int argc, char** argv, int first, Arguments& out);

}  // namespace pipehost::host
