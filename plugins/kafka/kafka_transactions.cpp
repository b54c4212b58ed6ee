// The kafka sink's exactly_once mode: one Kafka transaction per batch, holding the
// batch's records and the offsets its source consumed (KIP-447: sent with the consumer's
// group metadata, so a member that lost its partitions in a rebalance is fenced).
#include <chrono>
#include <map>
#include <thread>

#include "kafka_config.hpp"
#include "kafka_sink.hpp"

namespace pipehost::kafka {
namespace {

// A transactional call may take this long in all (librdkafka's own default for them) ...
constexpr auto kCallBudget = std::chrono::seconds(60);
// ... in slices this long, so that a stop (a signal, the host shutting down) with the
// broker gone ends the wait within a second instead of after the budget. init, commit
// and abort resume where the last slice stopped. send_offsets is not resumable (a call
// after a timeout sends the same offsets again): its slices are longer, so that a slow
// coordinator is not asked over and over.
constexpr int kSliceMs = 1000;
constexpr int kSendOffsetsSliceMs = 5000;

struct ErrorFacts {
  std::string text;
  bool fatal, abortable, retriable;
  rd_kafka_resp_err_t code;
};

ErrorFacts facts(rd_kafka_error_t* e) {
  ErrorFacts f{rd_kafka_error_string(e), rd_kafka_error_is_fatal(e) != 0,
               rd_kafka_error_txn_requires_abort(e) != 0, rd_kafka_error_is_retriable(e) != 0,
               rd_kafka_error_code(e)};
  rd_kafka_error_destroy(e);
  return f;
}

// What a user can do about a fatal error of the transactional producer.
std::string fatal_advice(const ErrorFacts& f, const std::string& transactional_id) {
  switch (f.code) {
    case RD_KAFKA_RESP_ERR__FENCED:
    case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
      return "another producer with transactional.id " + transactional_id +
             " fences this one: give each process running this pipeline its own transactional_id";
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
      return "the broker's ACLs refuse this principal transactions: allow it WRITE and DESCRIBE on "
             "transactional id " + transactional_id + " (and IDEMPOTENT_WRITE on the cluster)";
    default:
      return "the producer cannot go on (see librdkafka's reason)";
  }
}

bool timed_out(const rd_kafka_error_t* e) { return rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__TIMED_OUT; }

}  // namespace

// Calls fn(slice_ms) until it succeeds (nullptr), fails other than by a timeout, the budget
// is spent (the last timeout is returned) or the pipeline stops (Stopped, error dropped).
template <typename Call>
rd_kafka_error_t* KafkaSink::in_slices(Call&& fn, int slice_ms) {
  const auto deadline = std::chrono::steady_clock::now() + kCallBudget;
  for (;;) {
    rd_kafka_error_t* e = fn(slice_ms);
    if (!e || !timed_out(e) || std::chrono::steady_clock::now() >= deadline) {
      if (e && context_.stopping() && rd_kafka_error_is_retriable(e) && !rd_kafka_error_is_fatal(e)) {
        rd_kafka_error_destroy(e);
        throw Stopped{};
      }
      return e;
    }
    rd_kafka_error_destroy(e);
    if (context_.stopping()) throw Stopped{};
  }
}

// Aborts the open transaction; at a stop the abort is left to the broker (the next
// init_transactions with this transactional.id ends it, and so does the transaction
// timeout): waiting out a gone broker would only hold the stop up.
rd_kafka_error_t* KafkaSink::abort_transaction() {
  try {
    return in_slices([&](int ms) { return rd_kafka_abort_transaction(producer_, ms); }, kSliceMs);
  } catch (const Stopped&) {
    return nullptr;
  }
}

void KafkaSink::start_transactions() {
  for (int attempt = 0;; ++attempt) {
    rd_kafka_error_t* e = nullptr;
    try {
      e = in_slices([&](int ms) { return rd_kafka_init_transactions(producer_, ms); }, kSliceMs);
    } catch (const Stopped&) {  // retriable: the host does not retry at a stop, nor call it a failure
      throw RetriableError("stopped while starting the transactional producer " + transactional_id_ +
                           " (the broker had not answered)");
    }
    if (!e) break;
    ErrorFacts f = facts(e);
    if (!f.retriable || attempt >= 5)
      throw FatalError("cannot start the transactional producer " + transactional_id_ + ": " + f.text);
    context_.warn("starting the transactional producer: " + f.text + " (retrying)");
  }
  transactions_ = &context_.counter("transactions");
  aborts_ = &context_.counter("transactions_aborted");
  context_.info("exactly once: transactional producer " + transactional_id_);
}

// The consumed offsets of the batch: for each partition, the next offset to read.
rd_kafka_topic_partition_list_t* KafkaSink::consumed_offsets(const Batch& batch) const {
  std::map<std::pair<std::string_view, std::int32_t>, std::int64_t> next;
  for (const Span& s : batch.spans) {
    auto& n = next[{s.topic, s.partition}];
    n = std::max(n, s.next);
  }
  auto* list = rd_kafka_topic_partition_list_new(static_cast<int>(next.size()));
  for (const auto& [tp, offset] : next)
    rd_kafka_topic_partition_list_add(list, std::string(tp.first).c_str(), tp.second)->offset = offset;
  return list;
}

rd_kafka_consumer_group_metadata_t* KafkaSink::group_metadata() {
  std::lock_guard lock(link_->mutex);
  if (!link_->consumer)
    throw FatalError(
        "exactly_once needs the pipeline's source to be the kafka source (its consumed offsets "
        "commit in the sink's transactions); this pipeline's source is not, or has stopped");
  return rd_kafka_consumer_group_metadata(link_->consumer);
}

// An error of a transactional call: fatal ones (fenced by another producer with this
// transactional.id, not authorized) stop the pipeline; the rest abort the transaction and have the host
// rewind the source to the group's committed offsets. Retriable ones are retried by the
// caller before they come here.
void KafkaSink::settle(rd_kafka_error_t* error, const std::string& doing) {
  ErrorFacts f = facts(error);
  if (f.fatal)
    throw FatalError("transactional producer " + transactional_id_ + ", " + doing + ": " + f.text + " (" +
                     fatal_advice(f, transactional_id_) + ")");
  rd_kafka_error_t* aborted = abort_transaction();
  if (aborted) {
    ErrorFacts a = facts(aborted);
    throw FatalError("transactional producer " + transactional_id_ + ": " + doing + " failed (" +
                     f.text + ") and so did the abort: " + a.text);
  }
  aborts_->add();
  {
    std::lock_guard lock(failure_mutex_);
    if (delivery_failure_permanent_) {
      // The batch read again rejects the record before the transaction (prepare): the
      // host dead-letters it (or stops, under on_error = "fail") and the rest goes on.
      // Only when it failed alone: the broker refuses a whole batch of a partition at
      // once (too large, not authorized), and which of its records is at fault is unknown.
      if (permanent_failures_ == 1 &&
          refused_.remember(delivery_failure_origin_, delivery_failure_topic_,
                            delivery_failure_ + " (the broker refuses it whatever the attempt)"))
        throw PositionMismatch(delivery_failure_ + "; transaction aborted, the batch is read again so "
                               "that the record is rejected before the next one");
      if (permanent_failures_ > 1 && !isolating_) {
        isolating_ = true;
        throw PositionMismatch(std::to_string(permanent_failures_) + " records were refused together (the broker "
                               "refuses a partition's batch whole), the first: " + delivery_failure_ +
                               "; transaction aborted, the batch is read again a record at a time to find "
                               "which is at fault");
      }
      if (permanent_failures_ > 1)
        throw FatalError(std::to_string(permanent_failures_) + " records were refused together (the broker "
                         "refuses a partition's batch whole), the first: " + delivery_failure_ +
                         "; which of them is at fault is unknown, and reading the batch again would "
                         "fail the same way (transaction aborted, nothing of the batch written). Fix "
                         "the destination topic's settings (max.message.bytes, cleanup.policy, ACLs) "
                         "or the records");
      throw FatalError(delivery_failure_ + ": the broker refuses this record whatever the attempt, "
                       "so reading the batch again would fail the same way forever (transaction "
                       "aborted, nothing of the batch written). Fix the destination topic's "
                       "settings (max.message.bytes, cleanup.policy, ACLs) or the records");
    }
  }
  // Read again, a batch meets the same failure if its cause is for good (a destination
  // the producer may describe but not write, whose AddPartitionsToTxn librdkafka 2.0.2
  // takes as abortable): the pipeline would abort and read again forever, committing
  // nothing and failing nothing.
  if (f.code == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED || ++aborts_in_a_row_ >= kMostAbortsInARow)
    throw FatalError("transactional producer " + transactional_id_ + ": " + doing + " failed (" + f.text + ")" +
                     (aborts_in_a_row_ >= kMostAbortsInARow
                          ? ", the transaction of the same records aborted " + std::to_string(aborts_in_a_row_) +
                                " times in a row"
                          : std::string()) +
                     "; nothing of the batch was written. Check that the producer may write every "
                     "destination topic (ACLs: Write, and Describe on the transactional.id)");
  throw PositionMismatch(doing + " failed (" + f.text + "): transaction aborted");
}

// Delivery errors a retry of the same record meets again.
bool refused_for_good(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
      return true;
    default:
      return false;
  }
}

void KafkaSink::note_failed_delivery(const rd_kafka_message_t* message) {
  std::lock_guard lock(failure_mutex_);
  const bool permanent = refused_for_good(message->err);
  if (permanent) ++permanent_failures_;
  // The first report says it, unless a record refused for good comes after: librdkafka
  // purges the records still queued (__PURGE_QUEUE reports, innocent ones) before it
  // reports the one the broker refused.
  if (!delivery_failure_.empty() && (delivery_failure_permanent_ || !permanent)) return;
  const auto index = reinterpret_cast<std::uintptr_t>(message->_private);
  std::string which = "a record";
  delivery_failure_origin_ = Origin{};
  delivery_failure_topic_.clear();
  if (index >= 1 && index <= transaction_origins_.size()) {
    const Origin& o = transaction_origins_[index - 1];
    delivery_failure_origin_ = o;
    delivery_failure_topic_ = rd_kafka_topic_name(message->rkt);
    if (o.partition >= 0)
      which = "the record from " + std::string(o.topic) + "/" + std::to_string(o.partition) + "@" +
              std::to_string(o.offset);
  }
  delivery_failure_ = "delivery of " + which + " to " + rd_kafka_topic_name(message->rkt) +
                      " failed: " + rd_kafka_err2str(message->err);
  delivery_failure_permanent_ = refused_for_good(message->err);
}

void KafkaSink::write_transaction(Batch& batch, BatchDone done) {
  auto call = [&](const std::string& doing, auto&& fn, int slice_ms = kSliceMs) {
    for (int attempt = 0;; ++attempt) {
      rd_kafka_error_t* e = in_slices(fn, slice_ms);
      if (!e) return;
      if (rd_kafka_error_is_retriable(e) && attempt < 5 && !context_.stopping()) {
        context_.warn(doing + ": " + rd_kafka_error_string(e) + " (retrying)");
        rd_kafka_error_destroy(e);
        std::this_thread::sleep_for(std::chrono::milliseconds(100 << attempt));
        continue;
      }
      settle(e, doing);
    }
  };
  if (batch.records.empty() && batch.spans.empty()) return done(Status::ok());
  rd_kafka_consumer_group_metadata_t* group = group_metadata();
  rd_kafka_topic_partition_list_t* offsets = consumed_offsets(batch);
  struct Cleanup {
    rd_kafka_consumer_group_metadata_t* group;
    rd_kafka_topic_partition_list_t* offsets;
    ~Cleanup() {
      rd_kafka_consumer_group_metadata_destroy(group);
      rd_kafka_topic_partition_list_destroy(offsets);
    }
  } cleanup{group, offsets};

  {
    std::lock_guard lock(failure_mutex_);  // the last transaction's reports are all in
    delivery_failure_.clear();
    delivery_failure_permanent_ = false;
    permanent_failures_ = 0;
    transaction_origins_.clear();
    for (const auto& r : batch.records) transaction_origins_.push_back(r.origin);
  }
  try {
    call("beginning a transaction", [&](int) { return rd_kafka_begin_transaction(producer_); });
    try {
      // A record the producer refuses by itself, left out, would have the transaction
      // commit the offsets past it: every such record of the batch is remembered, the
      // transaction aborted and the batch read again, which rejects them first (prepare).
      std::string refused_first;
      std::size_t refused = 0;
      for (std::size_t i = 0; i < batch.records.size(); ++i) {
        try {
          produce(batch.records[i], reinterpret_cast<void*>(static_cast<std::uintptr_t>(i + 1)));
          if (isolating_) send_and_wait();  // each record in a produce request of its own
        } catch (const TransactionInError&) {
          break;  // the commit below fails, and settle reads the delivery reports
        } catch (RecordRefused& why) {
          if (!refused_.remember(batch.records[i].origin, batch.records[i].destination_topic, why.reason))
            throw FatalError(why.reason + " (a record a stage made, which cannot be read again)");
          if (refused++ == 0) refused_first = why.reason;
        }
      }
      if (refused > 0) {
        if (rd_kafka_error_t* a = abort_transaction()) rd_kafka_error_destroy(a);
        aborts_->add();
        throw PositionMismatch(refused_first + (refused > 1 ? " (and " + std::to_string(refused - 1) + " more)" : "") +
                               "; transaction aborted, the batch is read again so that they are rejected "
                               "before the next one");
      }
    } catch (const StoppedWhileFull&) {
      throw Stopped{};
    } catch (const FatalError& e) {
      if (rd_kafka_error_t* a = abort_transaction()) rd_kafka_error_destroy(a);
      throw;
    }
    if (offsets->cnt > 0)
      call("sending the consumed offsets to the transaction", [&](int ms) {
        return rd_kafka_send_offsets_to_transaction(producer_, offsets, group, ms);
      }, kSendOffsetsSliceMs);
    call("committing the transaction", [&](int ms) { return rd_kafka_commit_transaction(producer_, ms); });
  } catch (const Stopped&) {
    // Nothing is acknowledged: whether the broker ends this transaction committed or
    // aborted, its records and its consumed offsets go together, and the next run reads
    // on from the group's committed offsets either way.
    return done(Status::cancelled(
        "stopping before the broker confirmed the transaction; the broker ends it (committed "
        "or aborted, records and consumed offsets together) and the next run goes on from there"));
  }
  transactions_->add();
  aborts_in_a_row_ = 0;
  isolating_ = false;
  refused_.written(batch);
  done(Status::ok());
}

// The group's committed offset: where the source reads again after an aborted transaction.
std::optional<std::int64_t> KafkaSink::stored_position(std::string_view topic,
                                                       std::int32_t partition) {
  if (!exactly_once_) return std::nullopt;
  std::lock_guard lock(link_->mutex);
  if (!link_->consumer) return std::nullopt;
  auto* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, std::string(topic).c_str(), partition);
  rd_kafka_resp_err_t rc = rd_kafka_committed(link_->consumer, list, 10000);
  const std::int64_t offset = list->elems[0].offset;
  const rd_kafka_resp_err_t err = list->elems[0].err;
  rd_kafka_topic_partition_list_destroy(list);
  if (rc || err) throw RetriableError("reading the group's committed offset of " + std::string(topic) +
                                      "/" + std::to_string(partition) + ": " + error_text(rc ? rc : err));
  if (offset < 0) return std::nullopt;
  return offset;
}

}  // namespace pipehost::kafka
