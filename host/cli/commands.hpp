// The pipehost command line: run, validate, plugins.
#pragma once

namespace pipehost::host {

// Exit codes, documented in `pipehost --help` and the README.
enum ExitCode { kOk = 0, kPipelineFailed = 1, kInvalidInput = 2, kServicesUnavailable = 3 };

int main_command(int argc, char** argv);

}  // namespace pipehost::host
