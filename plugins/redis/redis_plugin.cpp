// The redis plugin library: declares the redis_sum sink.
#include <pipehost/sdk.hpp>

#include "redis_sum_sink.hpp"
#include "sink_config.hpp"

namespace {

pipehost::PluginSpec describe() {
  // Members set one by one: the aggregate form of plugin.hpp's comment,
  // PluginSpec{"name", "1.0", "..."}, trips -Werror=missing-field-initializers.
  pipehost::PluginSpec p;
  p.name = "redis";
  p.version = "0.1.0";
  p.description = "Redis sinks (hiredis)";
  p.add_sink<pipehost::redis::RedisSumSink>(
      "redis_sum",
      "Per-key running totals of a numeric field, kept exactly (integer units of "
      "10^-scale) and exactly once (source positions stored atomically with the totals "
      "by one Lua script per batch)",
      pipehost::redis::sink_options(), pipehost::redis::kSinkExample);
  return p;
}

}  // namespace

PIPEHOST_PLUGIN(describe)
