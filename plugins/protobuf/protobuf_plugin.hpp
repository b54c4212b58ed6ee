// The plugin's declaration, for the tests and the benchmark to build components the way
// the host does.
#pragma once
#include <pipehost/plugin.hpp>

namespace pipehost::protobuf {

PluginSpec plugin_spec();

}  // namespace pipehost::protobuf
