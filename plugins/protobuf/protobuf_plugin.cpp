// The library's entry points; everything else is in components.cpp.
#include "components.hpp"

PIPEHOST_PLUGIN(pipehost::protobuf::plugin_spec)
