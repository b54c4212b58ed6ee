// aggregate: transforms that fold a batch's records into fewer.
#include <pipehost/sdk.hpp>

#include "count_by.hpp"

namespace {

pipehost::PluginSpec describe() {
  pipehost::PluginSpec p{"aggregate", "0.2.0", "Per-batch aggregation"};
  p.add_transform<pipehost::aggregate::CountBy>(
      "count_by", "One record per distinct value of a field per batch, with its count or a sum",
      "[[pipelines.food.transforms]]\nplugin = \"count_by\"\ngroup_by = \"food\"");
  return p;
}

}  // namespace

PIPEHOST_PLUGIN(describe)
