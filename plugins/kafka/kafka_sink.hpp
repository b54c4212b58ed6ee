// kafka sink: an idempotent producer. A batch is acknowledged when the delivery report
// of its last record arrives; a record the broker refuses for good is rejected when its
// batch is read again (see RefusedCopies); any other failed delivery fails the pipeline
// rather than losing the record.
//
// exactly_once = true (a Kafka -> Kafka pipeline): a transactional producer per task.
// Each batch is one transaction holding its records and the consumed offsets of the
// task's Kafka source (sent with the consumer's group metadata, so a member fenced by a
// rebalance cannot commit); a failed transaction is aborted and the source reads again
// from the group's committed offsets. Readers of the output use read_committed.
#pragma once
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

#include <pipehost/sdk.hpp>

#include "refused_copies.hpp"
#include "task_link.hpp"

namespace pipehost::kafka {

struct KafkaSinkConfig {
  std::string topic;
  StringMap properties;
  bool exactly_once = false;
  std::optional<std::string> transactional_id;

  static void declare(OptionList<KafkaSinkConfig>& o);
  void check(Checker& c) const;
};

struct BatchCompletion;  // at least once: a batch's delivery reports (kafka_sink.cpp)

// Thrown by produce when the host stops while librdkafka's queue is full.
struct StoppedWhileFull {};
struct Stopped {};  // a transactional call given up because the pipeline is stopping
// Thrown by produce for a record librdkafka refuses by itself (larger than
// message.max.bytes): no attempt would take it, and it is the record's fault.
struct RecordRefused {
  std::string reason;
};
// Thrown by produce under exactly_once when the transaction already failed (librdkafka
// refuses every record after the broker refused one): its delivery reports say why.
struct TransactionInError {};

class KafkaSink final : public Sink {
 public:
  using Config = KafkaSinkConfig;
  KafkaSink(const Config& config, Context& context);
  ~KafkaSink() override;
  void start() override;
  void prepare(Batch& batch) override;
  void write(Batch& batch, BatchDone done) override;
  void flush() override;
  void stop() override;
  std::optional<std::int64_t> stored_position(std::string_view topic,
                                              std::int32_t partition) override;

 private:
  static void on_delivery(rd_kafka_t* rk, const rd_kafka_message_t* message, void* opaque);
  void produce(Record& record, void* completion);
  void stop_poller();
  void wait_for_room(std::uint64_t reports_before);
  void wait_for_deliveries();
  void send_and_wait();
  rd_kafka_topic_t* know_topic(const std::string& topic);
  // exactly_once (kafka_transactions.cpp)
  void start_transactions();
  void write_transaction(Batch& batch, BatchDone done);
  rd_kafka_consumer_group_metadata_t* group_metadata();
  rd_kafka_topic_partition_list_t* consumed_offsets(const Batch& batch) const;
  void settle(rd_kafka_error_t* error, const std::string& doing);
  template <typename Call>
  rd_kafka_error_t* in_slices(Call&& fn, int slice_ms);
  rd_kafka_error_t* abort_transaction();

  Context& context_;
  std::string topic_;
  StringMap properties_;
  rd_kafka_t* producer_ = nullptr;
  std::atomic<bool> polling_{false};
  std::thread poller_;
  Counter* delivered_ = nullptr;
  // A producer whose queue is full waits for librdkafka's next delivery report (which
  // frees room), not for a timer: reports_ counts them, and on_delivery wakes room_
  // while someone waits.
  std::atomic<std::uint64_t> reports_{0};
  std::atomic<std::uint64_t> produced_{0};  // records librdkafka took (reports_ of them come)
  std::atomic<bool> waiting_for_room_{false};
  // Set by the destructor: purged records free their batch's completion without calling
  // the host, which has let the batch go (it is read again by the next run).
  std::atomic<bool> abandoning_{false};
  std::mutex room_mutex_;
  std::condition_variable room_;
  // Topics this producer has asked metadata for, with their handles (kept for its life).
  std::unordered_map<std::string, rd_kafka_topic_t*> topics_;
  rd_kafka_topic_t* topic_handle_ = nullptr;  // the `topic` option's (owned by topics_)
  // Destinations the broker said do not exist, with when it was last asked.
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> missing_topics_;
  bool topic_missing(rd_kafka_topic_t* handle, int attempts);
  // Throws RecordRefused while `topic` is missing (asked again every 10 s).
  void check_still_missing(const std::string& topic, rd_kafka_topic_t* handle);
  static std::string replay_hint(const Record& r);
  bool exactly_once_ = false;
  // Records refused for good, rejected when their batch is read again. exactly_once:
  // refused by producev or the broker (a transaction cannot leave one out: it would
  // commit the offsets past it); at least once: by the broker, after write returned.
  RefusedCopies refused_;
  Status outcome(BatchCompletion& completion);
  void taken_alone(const std::string& topic);
  std::unordered_map<std::string, std::size_t> taken_alone_;  // by destination (task thread)
  // reports_ when a flush last gave up with records undelivered (none: no flush did).
  std::optional<std::uint64_t> gave_up_at_reports_;
  std::string transactional_id_;
  std::shared_ptr<TaskLink> link_;
  Counter* transactions_ = nullptr;
  Counter* aborts_ = nullptr;
  // The transaction's records' origins (a delivery report names its record by index + 1
  // in the message's opaque), and its first failed delivery.
  std::vector<Origin> transaction_origins_;
  std::mutex failure_mutex_;
  std::string delivery_failure_;
  bool delivery_failure_permanent_ = false;
  Origin delivery_failure_origin_;  // of the record it names (no position: a stage's)
  std::string delivery_failure_topic_;  // where that record went
  // After records the broker refused together (a partition's request is refused whole):
  // until a transaction commits, each record waits for its delivery report before the
  // next is produced, so that a refused one is refused alone and can be dead-lettered.
  bool isolating_ = false;
  // Transactions aborted since the last one committed (settle's generic failures): past
  // kMostAbortsInARow the pipeline stops instead of reading the same records again forever.
  int aborts_in_a_row_ = 0;
  static constexpr int kMostAbortsInARow = 10;
  std::size_t permanent_failures_ = 0;  // records the broker refused for good in the transaction
  void note_failed_delivery(const rd_kafka_message_t* message);
};

}  // namespace pipehost::kafka
