// kafka: the consumer-group source and the idempotent-producer sink.
#include <pipehost/sdk.hpp>

#include "kafka_sink.hpp"
#include "kafka_source.hpp"

namespace pipehost::kafka {
namespace {

OptionSpec properties_option() {
  return option("properties", OptionType::string_map, StringMap{},
                "extra librdkafka properties for this stage, e.g. { \"fetch.wait.max.ms\" = 5 }");
}

PluginSpec describe() {
  PluginSpec p{"kafka", "0.1.0", "Apache Kafka consumer-group source and producer sink", {}};
  p.add_source<KafkaSource>(
      "kafka",
      "Consumes topics as a member of a consumer group (tasks share the partitions; "
      "cooperative-sticky assignment); commits only acknowledged offsets; resumes from the "
      "sink's stored positions when the sink keeps them",
      {
          required_option("topics", OptionType::string_list, "topics to consume"),
          required_option("group", OptionType::string, "consumer group id"),
          with_allowed(option("start", OptionType::string, std::string("earliest"),
                              "where a new group starts"),
                       {"earliest", "latest"}),
          option("instance_id", OptionType::string, std::string(""),
                 "static group membership: a stable id per process (the task number is "
                 "appended), so a restart within session.timeout.ms keeps its partitions "
                 "without a rebalance; empty: dynamic membership"),
          option("stop_at_end", OptionType::boolean, false,
                 "end the pipeline once every assigned partition has been read to its end "
                 "(like kcat -e); otherwise run until stopped"),
          properties_option(),
      },
      "[pipelines.sums.source]\nplugin = \"kafka\"\ntopics = [\"transactions\"]\n"
      "group = \"transaction-sums\"");
  p.add_sink<KafkaSink>(
      "kafka",
      "Produces each record (key, value bytes, headers) with an idempotent producer, to "
      "`topic` or the record's destination topic; acknowledges on the delivery report",
      {
          option("topic", OptionType::string, std::string(""),
                 "topic to write to (records may override it with a destination topic)"),
          properties_option(),
      },
      "[pipelines.produce.sink]\nplugin = \"kafka\"\ntopic = \"transactions\"");
  return p;
}

}  // namespace
}  // namespace pipehost::kafka

PIPEHOST_PLUGIN(pipehost::kafka::describe)
