// kafka source: a consumer-group member. Tasks of a pipeline (and pipehost processes
// with the same config) share the group's partitions. Offsets are committed only for
// what the host says is acknowledged; on assignment a partition resumes where the
// pipeline's sink says (exactly-once sinks) or at the group's committed offset.
#pragma once
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <pipehost/sdk.hpp>

namespace pipehost::kafka {

class KafkaSource final : public Source {
 public:
  KafkaSource(const Options& options, Context& context);
  ~KafkaSource() override;
  void start() override;
  PollResult poll(Batch& out, Millis max_wait) override;
  void commit(const std::vector<Position>& positions) override;
  void finish_at_end() override { finish_at_end_ = true; }
  void stop() override;

 private:
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* partitions, void* opaque);
  void assign(rd_kafka_topic_partition_list_t* partitions);
  void revoke(rd_kafka_topic_partition_list_t* partitions);
  void take(rd_kafka_message_t* message, Batch& out);
  bool caught_up();
  bool group_done();
  void check_gap(std::string_view topic, std::int32_t partition, std::int64_t offset);
  std::string_view intern(const char* topic);
  void commit_sync(rd_kafka_topic_partition_list_t* only);
  void mark_sent(const rd_kafka_topic_partition_list_t* committed);

  using PartitionKey = std::pair<std::string_view, std::int32_t>;

  Context& context_;
  std::vector<std::string> topics_;
  std::string group_;
  StringMap properties_;
  std::string start_;
  std::string instance_id_;
  rd_kafka_t* consumer_ = nullptr;
  rd_kafka_queue_t* queue_ = nullptr;
  std::set<std::string, std::less<>> interned_;
  // Assigned partitions and whether each has reached its end.
  std::map<PartitionKey, bool> assigned_;
  // Last acknowledged positions the host gave us, by partition (what revoke commits).
  std::map<PartitionKey, std::int64_t> acknowledged_;
  // What was last sent to the group coordinator, so closing does not commit again.
  std::map<PartitionKey, std::int64_t> sent_;
  // The offset each partition should deliver next, to notice records the broker lost.
  std::map<PartitionKey, std::int64_t> expected_;
  std::vector<Position> resumed_;  // positions taken from the sink, to commit
  std::vector<rd_kafka_message_t*> scratch_;
  bool assignment_seen_ = false;
  bool ever_assigned_ = false;
  std::chrono::steady_clock::time_point last_end_check_{};
  bool finish_at_end_ = false;
  Counter* received_ = nullptr;
  Counter* commits_ = nullptr;
  Counter* skipped_ = nullptr;
};

}  // namespace pipehost::kafka
