// The pipehost command line: run, validate, plugins.
#pragma once

namespace pipehost::host {

class Diagnostics;

// Exit codes, documented in `pipehost --help` and the README.
enum ExitCode { kOk = 0, kPipelineFailed = 1, kInvalidInput = 2, kServicesUnavailable = 3 };

int main_command(int argc, char** argv);

// Config problems found while pipelines run (a reload): one error log line each, so that
// they are JSON with --log-format json.
void log_problems(const Diagnostics& diagnostics);

}  // namespace pipehost::host
