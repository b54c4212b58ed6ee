// The reference of everything a config file can say: the host's own settings and every
// installed component's options, from their declarations. `pipehost plugins NAME` prints
// one component; `pipehost plugins --markdown` writes docs/plugins.md.
#pragma once
#include <string>

#include "loader/plugin_registry.hpp"

namespace pipehost::host {

std::string component_text(const LoadedPlugin& plugin, const ComponentSpec& component);
std::string reference_markdown(const PluginRegistry& plugins);

}  // namespace pipehost::host
