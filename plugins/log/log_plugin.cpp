// log: logs running sums per key (seed 001).
#include <pipehost/sdk.hpp>

#include "log_sink.hpp"

namespace {

pipehost::PluginSpec describe() {
  pipehost::PluginSpec p{"log", "0.2.0", "Logs running sums per key (seed 001)"};
  p.add_sink<pipehost::logsink::LogSink>(
      "log",
      "Prints (key, running sum) for each record and the final totals at the end; sums are "
      "exact to `scale` decimals and shared by all tasks of the pipeline",
      "[pipelines.sums.sink]\nplugin = \"log\"\nkey_field = \"account_number\"\n"
      "sum_field = \"amount\"");
  return p;
}

}  // namespace

PIPEHOST_PLUGIN(describe)
