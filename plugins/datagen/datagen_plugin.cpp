// datagen: a bounded or endless source of fake records for demos, tests and benchmarks.
#include <pipehost/sdk.hpp>

#include "datagen_source.hpp"

namespace {

pipehost::PluginSpec describe() {
  pipehost::PluginSpec p{"datagen", "0.2.0", "Generates fake records in the seeds' shapes"};
  p.add_source<pipehost::datagen::DatagenSource>(
      "datagen", "Fake records of a kind, at a rate, bounded or endless; repeatable with a seed",
      "[pipelines.demo.source]\nplugin = \"datagen\"\nkind = \"transactions\"\ncount = 1000\n"
      "accounts = 20\nseed = 42");
  return p;
}

}  // namespace

PIPEHOST_PLUGIN(describe)
