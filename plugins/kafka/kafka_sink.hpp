// kafka sink: an idempotent producer. A batch is acknowledged when the delivery report
// of its last record arrives; a record that cannot be delivered fails the pipeline
// rather than being lost.
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

// exactly_once: records refused for good, by source position and destination topic (a
// router's copies of one record to several topics: only the refused copy is rejected
// when the batch is read again, as at least once). See pipehost/refused.hpp.
class RefusedCopies {
 public:
  explicit RefusedCopies(std::string default_topic) : default_topic_(std::move(default_topic)) {}
  // False when the record has no source position (it cannot be read again).
  bool remember(const Origin& origin, std::string_view destination, std::string reason) {
    if (origin.partition < 0 || origin.offset < 0) return false;
    refused_[key(origin, destination)] = std::move(reason);
    return true;
  }
  void reject_in(Batch& batch) const {
    if (refused_.empty()) return;
    for (std::size_t i = 0; i < batch.records.size(); ++i) {
      const Record& r = batch.records[i];
      if (r.dropped || r.origin.partition < 0) continue;
      auto it = refused_.find(key(r.origin, r.destination_topic));
      if (it != refused_.end()) batch.reject(i, it->second);
    }
  }
  // After a transaction committed: what its spans passed is stored, and forgotten here.
  void written(const Batch& batch) {
    for (const Span& s : batch.spans)
      std::erase_if(refused_, [&](const auto& entry) {
        const auto& [topic, partition, offset, destination] = entry.first;
        return topic == s.topic && partition == s.partition && offset < s.next;
      });
  }

 private:
  using Key = std::tuple<std::string, std::int32_t, std::int64_t, std::string>;
  Key key(const Origin& o, std::string_view destination) const {
    return {std::string(o.topic), o.partition, o.offset,
            std::string(destination.empty() ? std::string_view(default_topic_) : destination)};
  }
  std::string default_topic_;
  std::map<Key, std::string> refused_;
};

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
  bool exactly_once_ = false;
  // exactly_once: records producev refused, rejected when their batch is read again
  // (a transaction cannot leave one out: it would commit the offsets past it).
  RefusedCopies refused_;
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
  std::size_t permanent_failures_ = 0;  // records the broker refused for good in the transaction
  void note_failed_delivery(const rd_kafka_message_t* message);
};

}  // namespace pipehost::kafka
