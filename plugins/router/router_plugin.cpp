// router: per-destination topics and subjects, picked by a field's value.
#include <pipehost/sdk.hpp>

#include "router.hpp"

namespace {

pipehost::PluginSpec describe() {
  pipehost::PluginSpec p{"router", "0.1.0", "Routes records to topics by a field's value"};
  p.add_transform<pipehost::router::Router>(
      "router",
      "Sets each record's destination topic (and Schema Registry subject) from the value of one "
      "field, reshaping the value as configured; an unknown destination is rejected with the "
      "reason",
      "[[pipelines.processor.transforms]]\nplugin = \"router\"\nfield = \"destination_service_type\"\n"
      "topics = { FINANCE = \"processor.to.finance\" }");
  return p;
}

}  // namespace

PIPEHOST_PLUGIN(describe)
