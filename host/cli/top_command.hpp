// pipehost top: a live terminal view of a running pipehost's pipelines and stages
// (rates, in flight, lag, rejections, CPU per stage), read from its admin endpoint.
#pragma once
#include <string>

namespace pipehost::host {

// Samples GET /pipelines every `interval_s` and prints the rates between samples; with
// `once`, one table after one interval. Returns an exit code.
int top_command(const std::string& address, double interval_s, bool once);

}  // namespace pipehost::host
