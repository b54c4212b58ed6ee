#include "services/kafka_environment.hpp"

#include <algorithm>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <memory>

#include "log.hpp"
#include "pipehost/redact.hpp"

namespace pipehost::host {
namespace {
constexpr int kEmbeddedBrokers = 3;

bool set(rd_kafka_conf_t* conf, const std::string& key, const std::string& value,
         std::string& error) {
  char err[512];
  if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
    error = "kafka property " + key + "=" + redact::value(key, value) + ": " + err;
    return false;
  }
  return true;
}
}  // namespace

rd_kafka_conf_t* kafka_conf(const StringMap& properties, std::string& error) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [k, v] : properties)
    if (!set(conf, k, v, error)) {
      rd_kafka_conf_destroy(conf);
      return nullptr;
    }
  return conf;
}

KafkaEnvironment::~KafkaEnvironment() {
  // The cluster belongs to its owner handle (test.mock.num.brokers) and goes with it.
  if (owner_) rd_kafka_destroy(owner_);
}

bool KafkaEnvironment::start(const Config& config, std::string& error) {
  properties_ = config.kafka_properties;
  create_missing_ = config.create_topics;
  if (config.kafka_brokers != "embedded") {
    bootstrap_ = config.kafka_brokers;
    return create_topics(config.topics, error);
  }
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  if (!set(conf, "test.mock.num.brokers", std::to_string(kEmbeddedBrokers), error) ||
      !set(conf, "log_level", "4", error))
    return false;
  owner_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!owner_) {
    error = std::string("cannot start the embedded broker: ") + err;
    return false;
  }
  cluster_ = rd_kafka_handle_mock_cluster(owner_);
  if (!cluster_) {
    error = "cannot start the embedded broker (librdkafka built without the mock cluster?)";
    return false;
  }
  bootstrap_ = rd_kafka_mock_cluster_bootstraps(cluster_);
  log_info("embedded Kafka: " + std::to_string(kEmbeddedBrokers) + " in-process brokers at " +
           bootstrap_ +
           "; it keeps at most ~5 MiB per partition, so a consumer lagging further loses the "
           "oldest records: use a real broker for large backlogs");
  return create_topics(config.topics, error);
}

std::vector<std::string> KafkaEnvironment::retention_warnings(bool final_report) {
  std::vector<std::string> out;
  if (!cluster_) return out;
  std::string summary;
  for (const auto& t : topics_) {
    for (int p = 0; p < t.partitions; ++p) {
      int64_t low = 0, high = 0;
      if (rd_kafka_query_watermark_offsets(owner_, t.name.c_str(), p, &low, &high, 1000)) continue;
      auto [it, first] = dropped_.try_emplace({t.name, p}, 0);
      bool news = low > 0 && it->second == 0;
      it->second = low;
      std::string where = t.name + "/" + std::to_string(p);
      if (news)
        out.push_back("the embedded broker started dropping the oldest records of " + where +
                      " (it keeps ~5 MiB per partition): a consumer that has not read them yet "
                      "loses them. Use a real broker (e.g. --env real) for runs this large.");
      if (final_report && low > 0)
        summary += (summary.empty() ? "" : ", ") + std::to_string(low) + " of " + where;
    }
  }
  if (!summary.empty())
    out.push_back("the embedded broker dropped the oldest records: " + summary +
                  "; compare each pipeline's acknowledged count with what was produced");
  return out;
}

bool KafkaEnvironment::create_topics(const std::vector<TopicConfig>& topics, std::string& error) {
  if (topics.empty()) return true;
  if (cluster_) {
    std::vector<TopicConfig> sized = topics;
    for (auto& t : sized) {  // -1: the broker's default, which the embedded one has not
      t.partitions = std::max(t.partitions, 1);
      t.replication_factor = std::max(t.replication_factor, 1);
    }
    for (const auto& t : sized)  // a reload may list one again
      if (std::none_of(topics_.begin(), topics_.end(), [&](const TopicConfig& k) { return k.name == t.name; }))
        topics_.push_back(t);
    for (const auto& t : sized) {
      rd_kafka_resp_err_t rc = rd_kafka_mock_topic_create(
          cluster_, t.name.c_str(), t.partitions, std::min(t.replication_factor, kEmbeddedBrokers));
      if (rc != RD_KAFKA_RESP_ERR_NO_ERROR && rc != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        error = "embedded broker: cannot create topic " + t.name + ": " + rd_kafka_err2str(rc);
        return false;
      }
    }
    return true;
  }
  if (!create_missing_) return true;

  StringMap settings = properties_;
  settings["bootstrap.servers"] = bootstrap_;
  // Its connection errors are said once, below, with what to check.
  settings.try_emplace("log_level", "0");
  rd_kafka_conf_t* conf = kafka_conf(settings, error);
  if (!conf) return false;
  char err[512];
  std::unique_ptr<rd_kafka_t, decltype(&rd_kafka_destroy)> admin(
      rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err), &rd_kafka_destroy);
  if (!admin) {
    error = std::string("kafka admin client: ") + err;
    return false;
  }
  std::vector<rd_kafka_NewTopic_t*> requests;
  for (const auto& t : topics) {
    rd_kafka_NewTopic_t* request =
        rd_kafka_NewTopic_new(t.name.c_str(), t.partitions, t.replication_factor, err, sizeof err);
    if (!request) {  // librdkafka refuses the request itself (counts past its limits)
      for (auto* r : requests) rd_kafka_NewTopic_destroy(r);
      error = "cannot create topic " + t.name + ": " + err;
      return false;
    }
    requests.push_back(request);
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(admin.get());
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(admin.get(), RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(options, 15000, err, sizeof err);
  rd_kafka_AdminOptions_set_request_timeout(options, 15000, err, sizeof err);
  rd_kafka_CreateTopics(admin.get(), requests.data(), requests.size(), options, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 20000);
  bool ok = true;
  if (!event) {
    error = "Kafka at " + bootstrap_ + " did not answer within 20 s (is it running? check [kafka] brokers)";
    ok = false;
  } else if (rd_kafka_event_error(event)) {
    error = "Kafka at " + bootstrap_ + ": " + rd_kafka_event_error_string(event) +
            (rd_kafka_event_error(event) == RD_KAFKA_RESP_ERR__TIMED_OUT
                 ? " (no broker answered in 15 s: is it running? check [kafka] brokers)"
                 : "");
    ok = false;
  } else {
    size_t n = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &n);
    for (size_t i = 0; i < n && ok; ++i) {
      rd_kafka_resp_err_t rc = rd_kafka_topic_result_error(results[i]);
      if (rc == RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_info(std::string("created topic ") + rd_kafka_topic_result_name(results[i]));
      } else if (rc != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        error = std::string("cannot create topic ") + rd_kafka_topic_result_name(results[i]) +
                ": " + rd_kafka_topic_result_error_string(results[i]);
        ok = false;
      }
    }
  }
  if (event) rd_kafka_event_destroy(event);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_queue_destroy(queue);
  for (auto* r : requests) rd_kafka_NewTopic_destroy(r);
  return ok;
}

}  // namespace pipehost::host
