// kafka: the consumer-group source and the idempotent-producer sink.
#include <pipehost/sdk.hpp>

#include "kafka_sink.hpp"
#include "kafka_source.hpp"

namespace {

pipehost::PluginSpec describe() {
  pipehost::PluginSpec p{"kafka", "0.2.0", "Apache Kafka consumer-group source and producer sink"};
  p.add_source<pipehost::kafka::KafkaSource>(
      "kafka",
      "Consumes topics as a member of a consumer group (tasks share the partitions; "
      "roundrobin assignment); commits only acknowledged offsets; resumes from the "
      "sink's stored positions when the sink keeps them, and reads again from them when the "
      "sink's store lost writes",
      "[pipelines.sums.source]\nplugin = \"kafka\"\ntopics = [\"transactions\"]\n"
      "group = \"transaction-sums\"");
  p.add_sink<pipehost::kafka::KafkaSink>(
      "kafka",
      "Produces each record (key, value bytes, headers, a header without a value kept so; no key is a null key, an empty key read from Kafka stays empty, and a tombstone "
      "read from Kafka stays one) with an idempotent producer, to "
      "`topic` or the record's destination topic; acknowledges on the delivery report",
      "[pipelines.produce.sink]\nplugin = \"kafka\"\ntopic = \"transactions\"");
  return p;
}

}  // namespace

PIPEHOST_PLUGIN(describe)
