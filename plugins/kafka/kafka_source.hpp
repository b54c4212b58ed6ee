// kafka source: a consumer-group member. Tasks of a pipeline (and pipehost processes
// with the same config) share the group's partitions. Offsets are committed only for
// what the host says is acknowledged; on assignment a partition resumes where the
// pipeline's sink says (exactly-once sinks) or at the group's committed offset.
#pragma once
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <pipehost/sdk.hpp>

#include "consumer_lag.hpp"
#include "task_link.hpp"

namespace pipehost::kafka {

struct KafkaSourceConfig {
  std::vector<std::string> topics;
  std::string group;
  std::string start = "earliest";
  std::string instance_id;
  bool stop_at_end = false;
  bool headers = true;
  StringMap properties;

  static void declare(OptionList<KafkaSourceConfig>& o);
  void check(Checker& c) const;
};

class KafkaSource final : public Source {
 public:
  using Config = KafkaSourceConfig;
  KafkaSource(const Config& config, Context& context);
  ~KafkaSource() override;
  void start() override;
  PollResult poll(Batch& out, Millis max_wait) override;
  void commit(const std::vector<Position>& positions) override;
  void finish_at_end() override { finish_at_end_ = true; }
  void seek(const std::vector<Position>& positions) override;
  bool set_paused(bool paused) override;
  void stop() override;

 private:
  using PartitionKey = std::pair<std::string_view, std::int32_t>;  // topic from intern()
  // A fetcher with records to fetch answers within fetch.wait.max.ms (10 by default).
  static constexpr int kStallWaitMs = 12;
  struct PartitionState {
    bool at_end = false;         // the last event was the end of the partition
    std::int64_t read_to = -1;   // every offset before this was read (-1: start unknown)
    std::int64_t taken_to = -1;  // the last record handed to the host + 1 (-1: none yet)
    // Where the next span begins: the last record taken + 1, else where reading began (a
    // sink's position, a seek, the first end seen; -1: unknown). Not read_to, which an end
    // past a transaction's commit marker moves beyond where the sink's position is.
    std::int64_t span_from = -1;
    std::int64_t resumed_at = -1;  // the sink's stored position it resumed from (-1: none)
    bool lost_before = false;    // offsets before read_to were deleted unread (seen at an end)
    std::int64_t first_read = -1;  // where reading began (the lag's position before any acknowledgement)
    // Where this assignment of the partition began: a position below it, or any before
    // the first event, is of a batch read before the partition was revoked and
    // acknowledged only after it came back (see accept). -1: no event yet.
    std::int64_t assigned_from = -1;
    Gauge* lag = nullptr;        // records after the acknowledged position (metrics)
  };

  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* partitions, void* opaque);
  static void on_commit(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t* offsets, void* opaque);
  void assign(rd_kafka_topic_partition_list_t* partitions);
  void revoke(rd_kafka_topic_partition_list_t* partitions);
  void take(rd_kafka_message_t* message, Batch& out);
  void update_lag();
  bool records_waiting();
  bool cached_watermarks(std::string_view topic, std::int32_t partition, std::int64_t& low,
                         std::int64_t& high);
  bool wake_stalled_fetchers();
  void wake_below_half_full(std::size_t taken, std::size_t payload_bytes);
  void start_waker();
  void stop_waker();
  void set_joining(bool joining);
  void nudge_group();
  void leave_group();
  void take_message(rd_kafka_message_t* message, Batch& out, bool& kept);
  Span& span_of(Batch& out, std::string_view topic, std::int32_t partition, std::int64_t from);
  [[noreturn]] void refuse_foreign_position(std::string_view topic, std::int32_t partition,
                                            const PartitionState& state);
  void note_gap(std::string_view topic, std::int32_t partition, PartitionState& state,
                std::int64_t offset);
  bool caught_up();
  void commit_ends();
  bool group_done();
  void check_topics_exist(bool fail);
  std::string_view intern(const char* topic);
  void commit_sync(rd_kafka_topic_partition_list_t* only);
  rd_kafka_topic_partition_list_t* accept(const std::vector<Position>& positions);
  void mark_sent(const rd_kafka_topic_partition_list_t* committed);
  void pause_partitions(rd_kafka_topic_partition_list_t* partitions, bool pause);
  bool sink_commits();  // the task's sink commits offsets in its transactions
  void unlink();

  Context& context_;
  std::vector<std::string> topics_;
  std::string group_;
  StringMap properties_;
  std::string start_;
  std::string instance_id_;
  rd_kafka_t* consumer_ = nullptr;
  std::shared_ptr<TaskLink> link_;
  rd_kafka_queue_t* queue_ = nullptr;
  std::set<std::string, std::less<>> interned_;
  std::map<PartitionKey, PartitionState> assigned_;
  // Last acknowledged positions the host gave us, by partition (what revoke commits).
  std::map<PartitionKey, std::int64_t> acknowledged_;
  // What the group coordinator confirmed, so closing does not commit again and a failed
  // asynchronous commit is sent again on revoke or close.
  std::map<PartitionKey, std::int64_t> sent_;
  std::vector<Position> resumed_;  // positions taken from the sink, to commit
  void settle_resumed();
  void warn_if_behind_group(const std::vector<Position>& resumed);
  std::vector<rd_kafka_message_t*> scratch_;
  // The partition of the message taken before: a poll's messages come in runs from one
  // partition, so the topic's name and the partition's state are looked up once per run,
  // not per message (a hash, a map search and string compares). Reset before each poll's
  // messages are taken: only a rebalance, which cannot happen while they are taken,
  // changes assigned_.
  struct LastPartition {
    rd_kafka_topic_t* topic_handle = nullptr;
    std::int32_t partition = -1;
    std::string_view topic;
    PartitionState* state = nullptr;  // nullptr: not assigned
    std::size_t span = kNoSpan;       // its span in the batch being filled
    static constexpr std::size_t kNoSpan = ~std::size_t{0};
  } last_;
  PartitionSlots span_slots_;  // the spans of the batch being filled (as last_.span)
  bool assignment_seen_ = false;
  bool ever_assigned_ = false;
  bool subscribed_ = false;  // start got as far as subscribing (else no group to wait for)
  bool paused_ = false;
  bool cooperative_ = false;  // the group's rebalance protocol (from the configuration)
  std::chrono::steady_clock::time_point last_end_check_{};
  std::chrono::steady_clock::time_point last_lag_update_{};
  // wake_stalled_fetchers: the partitions to ask for their offsets, handed to the waker
  // thread so that the poll never waits for the broker's answer.
  std::thread waker_;
  std::mutex wake_mutex_;
  std::condition_variable wake_changed_;
  std::vector<std::pair<std::string, std::int32_t>> wake_partitions_;
  bool waker_stopping_ = false;
  ConsumerLag lag_;  // set from polls, and refreshed by the waker every kLagRefresh
  // Between subscribing (or losing every partition) and the group's next assignment:
  // the waker then nudges librdkafka's group state machine (see nudge_group).
  std::atomic<bool> joining_{false};
  // What this consumer took since its queue was last seen empty: only a run that reached
  // librdkafka's thresholds can have stopped a fetcher (see wake_stalled_fetchers).
  std::size_t run_bytes_ = 0;
  std::size_t run_messages_ = 0;
  std::size_t stall_bytes_ = 0;     // half of queued.max.messages.kbytes
  std::size_t stall_messages_ = 0;  // half of queued.min.messages
  std::chrono::steady_clock::time_point stall_possible_at_{};  // the last such run
  bool queue_was_high_ = false;  // seen at half a threshold since the last wake (wake_below_half_full)
  bool finish_at_end_ = false;
  rd_kafka_resp_err_t last_warned_error_ = RD_KAFKA_RESP_ERR_NO_ERROR;  // said once per 10 s
  std::chrono::steady_clock::time_point last_warned_at_{};
  bool headers_ = true;
  Counter* received_ = nullptr;
  Counter* commits_ = nullptr;
  Counter* commit_failures_ = nullptr;
  Counter* skipped_ = nullptr;
  Counter* lost_ = nullptr;
  Counter* fetcher_wakes_ = nullptr;
};

}  // namespace pipehost::kafka
