// redis: the redis_sum sink.
#include <pipehost/sdk.hpp>

#include "redis_sum_sink.hpp"

namespace {

pipehost::PluginSpec describe() {
  pipehost::PluginSpec p{"redis", "0.2.0", "Redis sinks (hiredis)"};
  p.add_sink<pipehost::redis::RedisSumSink>(
      "redis_sum",
      "Per-key running totals of a numeric field, kept exactly (integer units of "
      "10^-scale) and exactly once (source positions stored atomically with the totals "
      "by one Lua script per batch)",
      "[pipelines.transactions.sink]\nplugin = \"redis_sum\"\nkey_field = \"account_number\"\n"
      "value_field = \"amount\"\nlayout = \"string\"\nscale = 2")
      .stores_positions = true;
  return p;
}

}  // namespace

PIPEHOST_PLUGIN(describe)
