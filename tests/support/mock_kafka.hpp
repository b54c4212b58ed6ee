// librdkafka's mock cluster for unit tests: brokers in this process, fault injection
// (broker down/up, request errors), and a plain consumer to read what a topic holds.
// Tests wait for conditions with a deadline, never for a fixed time.
#pragma once
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace pipehost::testing {

class MockKafka {
 public:
  explicit MockKafka(int brokers = 1) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "test.mock.num.brokers", std::to_string(brokers).c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    owner_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!owner_) throw std::runtime_error(err);
    cluster_ = rd_kafka_handle_mock_cluster(owner_);
    bootstrap_ = rd_kafka_mock_cluster_bootstraps(cluster_);
  }
  ~MockKafka() { rd_kafka_destroy(owner_); }
  MockKafka(const MockKafka&) = delete;
  MockKafka& operator=(const MockKafka&) = delete;

  const std::string& bootstrap() const { return bootstrap_; }
  rd_kafka_mock_cluster_t* cluster() { return cluster_; }
  void create_topic(const std::string& name, int partitions = 1) {
    rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, 1);
  }
  void broker_down(int id = 1) { rd_kafka_mock_broker_set_down(cluster_, id); }
  void broker_up(int id = 1) { rd_kafka_mock_broker_set_up(cluster_, id); }

  struct Message {
    std::string key, value;
    std::int32_t partition;
    std::int64_t offset;
    std::vector<std::pair<std::string, std::string>> headers;
  };

  // Everything a topic's partitions hold now, read by a plain assigned consumer.
  std::vector<Message> read_all(const std::string& topic, int partitions = 1) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap_.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", "mock-reader", err, sizeof err);
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof err);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_t* c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    rd_kafka_poll_set_consumer(c);
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p)
      rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(c, list);
    rd_kafka_topic_partition_list_destroy(list);
    std::vector<Message> out;
    int ended = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (ended < partitions && std::chrono::steady_clock::now() < deadline) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(c, 100);
      if (!m) continue;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        ++ended;
      } else if (!m->err) {
        Message msg{std::string(static_cast<const char*>(m->key), m->key_len),
                    std::string(static_cast<const char*>(m->payload), m->len), m->partition,
                    m->offset, {}};
        rd_kafka_headers_t* headers = nullptr;
        if (!rd_kafka_message_headers(m, &headers)) {
          const char* name;
          const void* value;
          size_t size;
          for (size_t i = 0; !rd_kafka_header_get_all(headers, i, &name, &value, &size); ++i)
            msg.headers.emplace_back(name, std::string(static_cast<const char*>(value), size));
        }
        out.push_back(std::move(msg));
      }
      rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return out;
  }

 private:
  rd_kafka_t* owner_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  std::string bootstrap_;
};

// Polls `condition` until it holds or `timeout` passes; returns whether it held.
inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

}  // namespace pipehost::testing
