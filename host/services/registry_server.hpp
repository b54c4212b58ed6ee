// The embedded schema registry served over Confluent's REST API, for development when
// no real registry is at hand: `pipehost registry --listen 127.0.0.1:8081`.
#pragma once
#include <string>

namespace pipehost::host {

// Serves until SIGINT/SIGTERM; returns the process exit code.
int serve_registry(const std::string& address);

}  // namespace pipehost::host
