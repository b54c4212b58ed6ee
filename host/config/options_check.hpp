// Checks one stage's table against its component's declared options and builds the
// Options the component receives.
#pragma once
#include <string>

#include "config/diagnostics.hpp"
#include "config/model.hpp"

namespace pipehost::host {

void check_stage_options(const std::string& pipeline, StageConfig& stage, Diagnostics& diagnostics);

}  // namespace pipehost::host
