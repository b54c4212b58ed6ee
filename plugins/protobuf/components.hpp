// The plugin's declaration: components protobuf_encode and protobuf_decode. Kept out of
// protobuf_plugin.cpp so the unit tests drive the same factories the host does.
#pragma once
#include <pipehost/plugin.hpp>

namespace pipehost::protobuf {

PluginSpec plugin_spec();

}  // namespace pipehost::protobuf
