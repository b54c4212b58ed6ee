// The Kafka the pipelines talk to: the in-process mock cluster for brokers = "embedded"
// (librdkafka's rdkafka_mock, 3 brokers), or a real cluster, where the configured
// topics are created when missing.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <librdkafka/rdkafka.h>

#include "config/model.hpp"

struct rd_kafka_s;
struct rd_kafka_mock_cluster_s;

namespace pipehost::host {

// A librdkafka configuration holding these properties; null with `error` naming the
// property librdkafka refused (a secret's value is not shown). The caller owns it.
rd_kafka_conf_t* kafka_conf(const StringMap& properties, std::string& error);

class KafkaEnvironment {
 public:
  KafkaEnvironment() = default;
  KafkaEnvironment(const KafkaEnvironment&) = delete;
  KafkaEnvironment& operator=(const KafkaEnvironment&) = delete;
  ~KafkaEnvironment();

  // Returns false with `error` set when the broker cannot be reached or a topic not made.
  bool start(const Config& config, std::string& error);
  bool create_topics(const std::vector<TopicConfig>& topics, std::string& error);
  // A reload's: `create_missing` is the new config's create_topics.
  bool create_topics(const std::vector<TopicConfig>& topics, bool create_missing, std::string& error) {
    create_missing_ = create_missing;
    return create_topics(topics, error);
  }
  const std::string& bootstrap() const { return bootstrap_; }
  bool embedded() const { return cluster_ != nullptr; }
  const StringMap& properties() const { return properties_; }
  // Embedded only: a warning the first time the mock cluster drops the oldest records
  // of a partition (it keeps ~5 MiB per partition), and with `final_report` a summary.
  std::vector<std::string> retention_warnings(bool final_report);

 private:
  std::string bootstrap_;
  StringMap properties_;
  bool create_missing_ = true;
  rd_kafka_s* owner_ = nullptr;
  rd_kafka_mock_cluster_s* cluster_ = nullptr;
  std::vector<TopicConfig> topics_;
  std::map<std::pair<std::string, int>, long long> dropped_;  // low watermark last reported
};

}  // namespace pipehost::host
