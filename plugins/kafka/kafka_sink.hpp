// kafka sink: an idempotent producer. A batch is acknowledged when the delivery report
// of its last record arrives; a record that cannot be delivered fails the pipeline
// rather than being lost.
#pragma once
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <string>
#include <thread>

#include <pipehost/sdk.hpp>

namespace pipehost::kafka {

struct KafkaSinkConfig {
  std::string topic;
  StringMap properties;

  static void declare(OptionList<KafkaSinkConfig>& o);
  void check(Checker& c) const;
};

class KafkaSink final : public Sink {
 public:
  using Config = KafkaSinkConfig;
  KafkaSink(const Config& config, Context& context);
  ~KafkaSink() override;
  void start() override;
  void write(Batch& batch, BatchDone done) override;
  void flush() override;
  void stop() override;

 private:
  static void on_delivery(rd_kafka_t* rk, const rd_kafka_message_t* message, void* opaque);
  void produce(Record& record, void* completion);

  Context& context_;
  std::string topic_;
  StringMap properties_;
  rd_kafka_t* producer_ = nullptr;
  std::atomic<bool> polling_{false};
  std::thread poller_;
  Counter* delivered_ = nullptr;
};

}  // namespace pipehost::kafka
