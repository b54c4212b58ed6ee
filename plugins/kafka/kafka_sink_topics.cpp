// The kafka sink's destination topics: a handle each, their metadata asked for at once,
// and a destination that does not exist refusing its records until it does.
#include "kafka_sink.hpp"

#include <chrono>
#include <thread>

#include "kafka_config.hpp"

namespace pipehost::kafka {

// librdkafka (2.0.2) asks for the metadata of a topic it first hears of after start-up
// only on its one-second topic scan: the first records to a new topic would wait ~1 s
// in its unassigned queue. Asking at once (blocking, once per topic) saves that second;
// the wait is short so that a broker that is down holds nobody up for long (the records
// then wait for librdkafka's own scan, as before).
//
// Whether the broker says the topic does not exist, asked `attempts` times. A topic
// created a moment ago (pipehost's [kafka.topics]) can be unknown to a broker whose
// metadata lags: at first sight asked again for 2 s before it is called missing. Not known either way (no answer): false, and
// records wait for librdkafka's own metadata. A broker that creates topics on demand
// answers otherwise (it creates this one).
bool KafkaSink::topic_missing(rd_kafka_topic_t* handle, int attempts) {
  bool missing = false;
  for (int attempt = 0; attempt < attempts && !context_.stopping(); ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(250));
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(producer_, 0, handle, &md, 1500) != RD_KAFKA_RESP_ERR_NO_ERROR || !md) return false;
    missing = md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    rd_kafka_metadata_destroy(md);
    if (!missing) return false;
  }
  return missing;
}

rd_kafka_topic_t* KafkaSink::know_topic(const std::string& topic) {
  if (auto known = topics_.find(topic); known != topics_.end()) {
    if (!missing_topics_.empty()) check_still_missing(topic, known->second);
    return known->second;
  }
  if (topic == topic_ && !is_kafka_topic_name(topic))  // validate says so first
    throw FatalError("topic '" + topic + "' is not a Kafka topic name (1-249 of letters, digits, '.', '_', '-')");
  if (!is_kafka_topic_name(topic))  // a destination a stage made (a router's table): that record's fault
    throw RecordRefused{"kafka: the record's destination '" + topic +
                        "' is not a Kafka topic name (1-249 of letters, digits, '.', '_', '-')"};
  rd_kafka_topic_t* handle = rd_kafka_topic_new(producer_, topic.c_str(), nullptr);
  if (!handle) throw FatalError("cannot use topic " + topic + ": " + error_text(rd_kafka_last_error()));
  topics_.emplace(topic, handle);
  if (!topic_missing(handle, 9)) return handle;
  if (topic == topic_)
    throw FatalError("topic " + topic + " does not exist and the broker does not create "
                     "topics: create it, or list it under [kafka.topics] to have pipehost create it");
  // A destination a record names (a router's): its records are rejected (dead-lettered)
  // while it is missing, so one tenant's missing topic does not stop every other's (they
  // failed after topic.metadata.propagation.max.ms, 30 s, and stopped the pipeline).
  missing_topics_[topic] = std::chrono::steady_clock::now();
  context_.warn("topic " + topic + " does not exist (the broker does not create topics): records to it are "
                "rejected per on_error until it does (asked again every 10 s); create it, or list it under "
                "[kafka.topics] to have pipehost create it at start");
  check_still_missing(topic, handle);
  return handle;
}

void KafkaSink::check_still_missing(const std::string& topic, rd_kafka_topic_t* handle) {
  auto missing = missing_topics_.find(topic);
  if (missing == missing_topics_.end()) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - missing->second > std::chrono::seconds(10)) {
    if (!topic_missing(handle, 1)) {  // one request: the sink's other records wait meanwhile
      missing_topics_.erase(missing);
      context_.info("topic " + topic + " exists now: records to it are written again");
      return;
    }
    missing->second = now;
  }
  throw RecordRefused{"kafka: topic " + topic + " does not exist and the broker does not create topics: "
                      "create it (or list it under [kafka.topics])"};
}

}  // namespace pipehost::kafka
