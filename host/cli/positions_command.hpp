// pipehost positions: a Kafka-sourced pipeline's committed offsets, high watermarks and
// lag, read from the cluster while the pipeline runs or not; and --reset-to, what Kafka
// Connect users do by hand with kafka-consumer-groups --reset-offsets.
#pragma once
#include <string>

#include "config/model.hpp"

namespace pipehost::host {

// Prints the positions of `pipeline`'s consumer group; with `reset_to` ("earliest",
// "latest", an offset, or an RFC 3339 time) shows the new ones, and with `execute`
// commits them (the group must have no active member). Returns an exit code.
int positions_command(const Config& config, const PipelineConfig& pipeline, const std::string& reset_to,
                      bool execute);

}  // namespace pipehost::host
