// An out-of-tree plugin, the template to copy: one component (shout.hpp) and this
// declaration. Build it against the installed SDK with the CMakeLists.txt beside it.
#include <pipehost/sdk.hpp>

#include "shout.hpp"

namespace {

pipehost::PluginSpec describe() {
  pipehost::PluginSpec p{"hello", "1.0.0", "An example plugin built outside the main tree"};
  p.add_transform<hello::Shout>("shout", "Upper-cases a string field",
                                "[[pipelines.demo.transforms]]\nplugin = \"shout\"\nfield = \"name\"");
  return p;
}

}  // namespace

PIPEHOST_PLUGIN(describe)
