#include "kafka_sink.hpp"

#include <pthread.h>

#include <algorithm>
#include <mutex>
#include <optional>

#include "kafka_config.hpp"

namespace pipehost::kafka {
namespace {
// A destination deleted (librdkafka learns it from metadata: its partitions go to 0) or
// one the producer may not describe.
bool gone_or_hidden(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
         err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
}
}  // namespace

// At least once: one per written batch; freed by the delivery report of its last record
// (or by write, for records never handed to librdkafka).
struct BatchCompletion;
// A record's delivery report names its slot (the message's opaque): its source position,
// for a record the broker refuses, which is then rejected when the batch is read again.
struct RecordSlot {
  BatchCompletion* batch;
  std::int64_t offset;
  std::int32_t partition;  // -1: no source position (a record a stage made)
  std::uint32_t topic;     // in BatchCompletion::topics
  bool alone;              // produced with nothing else in flight: a refusal is its own
};
struct Refusal {
  const RecordSlot* slot;
  std::string destination;
  std::string reason;
};

struct BatchCompletion {
  std::atomic<std::size_t> remaining;
  std::mutex mutex;
  Status status;                  // the first failure
  std::vector<Refusal> refusals;  // records the broker refused for good
  BatchDone done;
  Counter* delivered;
  std::vector<RecordSlot> slots;
  std::vector<std::string> topics;  // the records' source topics
  std::vector<RefusedCopies::Passed> spans;  // what the batch covers
  std::function<Status(BatchCompletion&)> outcome;  // the status done is called with

  void fail(Status s) {
    std::lock_guard lock(mutex);
    if (status.is_ok()) status = std::move(s);
  }
  void refuse(const RecordSlot* slot, std::string destination, std::string reason) {
    std::lock_guard lock(mutex);
    refusals.push_back({slot, std::move(destination), std::move(reason)});
  }
  // `n` records are settled; the last one calls done and frees this.
  void settle(std::size_t n) {
    if (remaining.fetch_sub(n) != n) return;
    done(outcome(*this));
    delete this;
  }
  // As settle, but the host is not told (the sink is being destroyed).
  void abandon(std::size_t n) {
    if (remaining.fetch_sub(n) == n) delete this;
  }
  // The refusal of a record produced alone, taken out of those done reports.
  std::optional<std::string> take_refusal(const RecordSlot* slot) {
    std::lock_guard lock(mutex);
    auto it = std::find_if(refusals.begin(), refusals.end(), [&](const Refusal& r) { return r.slot == slot; });
    if (it == refusals.end()) return std::nullopt;
    std::string reason = std::move(it->reason);
    refusals.erase(it);
    return reason;
  }
  std::uint32_t topic_index(std::string_view topic) {
    if (!topics.empty() && topics.back() == topic) return static_cast<std::uint32_t>(topics.size() - 1);
    for (std::size_t i = 0; i < topics.size(); ++i)
      if (topics[i] == topic) return static_cast<std::uint32_t>(i);
    topics.emplace_back(topic);
    return static_cast<std::uint32_t>(topics.size() - 1);
  }
};

void KafkaSinkConfig::declare(OptionList<KafkaSinkConfig>& o) {
  o.add("topic", &KafkaSinkConfig::topic,
        "topic to write to (a record's destination topic, set by a transform, overrides it)");
  o.add("properties", &KafkaSinkConfig::properties,
        "extra librdkafka producer properties for this stage, e.g. { \"linger.ms\" = 20 }");
  o.add("exactly_once", &KafkaSinkConfig::exactly_once,
        "Kafka transactions: each batch's records and its consumed offsets commit together "
        "(the pipeline's source must be the kafka source; readers use read_committed). A "
        "transaction costs its round trips (~20 ms on a local broker): raise the pipeline's "
        "batch_size (e.g. 4096) for throughput");
  o.add("transactional_id", &KafkaSinkConfig::transactional_id,
        "exactly_once: prefix of the producers' transactional.id (the task number is "
        "appended); one per process running the pipeline (default: pipehost-<pipeline>)");
}

void KafkaSinkConfig::check(Checker& c) const {
  if (!topic.empty() && !is_kafka_topic_name(topic))
    c.problem("topic", "'" + topic + "' is not a Kafka topic name (1-249 of letters, digits, '.', '_', '-')");
  check_properties(properties, c);
  if (c.connect()) check_broker(c);
}

KafkaSink::KafkaSink(const Config& config, Context& context)
    : context_(context),
      topic_(config.topic),
      properties_(config.properties),
      exactly_once_(config.exactly_once),
      refused_(config.topic) {
  delivered_ = &context.counter("records_out");
  if (exactly_once_) {
    transactional_id_ = config.transactional_id.value_or("pipehost-" + std::string(context.pipeline())) +
                        "-" + std::to_string(context.task_index());
    link_ = task_link(context.pipeline(), context.task_index());
    std::lock_guard lock(link_->mutex);
    link_->offsets_in_transactions = true;
  }
}

KafkaSink::~KafkaSink() {
  stop_poller();
  if (producer_ && !exactly_once_) {
    // Records still queued (a broker gone at the stop) are never acknowledged: the host
    // has let their batch go and the next run reads them again. Purged, their reports
    // free the batch's completion (rd_kafka_destroy would drop the records and leak it).
    abandoning_ = true;
    rd_kafka_purge(producer_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(producer_, 0);
  }
  for (auto& [name, handle] : topics_) rd_kafka_topic_destroy(handle);
  if (producer_) rd_kafka_destroy(producer_);
}

void KafkaSink::start() {
  StringMap defaults = {
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"linger.ms", "5"},
      {"batch.num.messages", "10000"},
      // Bounded: librdkafka's default queue (1 GiB) breaks a small memory budget.
      {"queue.buffering.max.kbytes", "16384"},
      {"queue.buffering.max.messages", "100000"},
  };
  if (exactly_once_) defaults["transactional.id"] = transactional_id_;
  // No message timeout (librdkafka's default gives up after 5 minutes and fails the
  // pipeline): a record is retried until the broker takes it, so a broker down for longer
  // holds the pipeline up (backpressure; /ready and stall_timeout_ms tell) instead of
  // stopping it. Kafka Connect gives its producers delivery.timeout.ms = Integer.MAX_VALUE
  // for the same reason. A transactional producer keeps the default: its records must be
  // settled within the transaction's timeout.
  else defaults["message.timeout.ms"] = "0";
  rd_kafka_conf_t* conf = make_conf(context_, defaults, properties_);
  rd_kafka_conf_set_opaque(conf, this);
  rd_kafka_conf_set_dr_msg_cb(conf, &KafkaSink::on_delivery);
  char err[512];
  producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!producer_) throw FatalError(std::string("cannot create the Kafka producer: ") + err);
  polling_ = true;
  poller_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "kafka-reports");
    while (polling_) rd_kafka_poll(producer_, 50);
  });
  if (exactly_once_) start_transactions();
  if (!topic_.empty()) topic_handle_ = know_topic(topic_);
}

void KafkaSink::on_delivery(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
  auto* sink = static_cast<KafkaSink*>(opaque);
  // At least once, counted once the report is noted: a writer waiting for it
  // (send_and_wait) then finds a refusal of its record.
  auto count_report = [sink] {
    sink->reports_.fetch_add(1);
    if (sink->waiting_for_room_.load()) {
      { std::lock_guard lock(sink->room_mutex_); }  // the waiter is waiting, or sees reports_
      sink->room_.notify_all();
    }
  };
  if (sink->exactly_once_) {  // in a transaction: committing it reports a failed delivery
    count_report();
    if (!message->err) sink->delivered_->add();
    else sink->note_failed_delivery(message);
    return;
  }
  const auto* slot = static_cast<const RecordSlot*>(message->_private);
  BatchCompletion* c = slot->batch;  // alive until settled below
  if (sink->abandoning_.load()) return count_report(), c->abandon(1);
  if (!message->err) {
    c->delivered->add();
  } else {
    const std::string destination = rd_kafka_topic_name(message->rkt);
    std::string failed = "delivery of the record" +
                         (slot->partition >= 0 ? " from " + c->topics[slot->topic] + "/" +
                                                     std::to_string(slot->partition) + "@" +
                                                     std::to_string(slot->offset)
                                               : std::string()) +
                         " to " + destination + " failed: " + rd_kafka_err2str(message->err);
    // Not authorized for the sink's own topic is the pipeline's fault, not a record's
    // (every record would be dead-lettered); for a destination a stage chose (a router's
    // tenant), that destination's records are rejected, as for a missing topic.
    const bool own_topic_denied = (message->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
                                   message->err == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED) &&
                                  destination == sink->topic_;
    // A destination a stage chose that was deleted while its records were queued: those
    // records are rejected too (its later records are, by produce, until it is back).
    const bool destination_gone = gone_or_hidden(message->err) && destination != sink->topic_;
    const bool refused = (refused_for_good(message->err) && !own_topic_denied) || destination_gone;
    if (refused && slot->partition >= 0)
      c->refuse(slot, destination, std::move(failed));
    else
      c->fail(Status::fatal(std::move(failed) +
                            (refused ? " (a record without a source position, which cannot be read again)"
                             : own_topic_denied ? " (grant this producer Write on the topic)"
                                                : "")));
  }
  count_report();
  c->settle(1);
}

// A record refused with others was taken alone. Once is a bad record among good ones;
// records of a topic taken alone again and again mean the topic refuses the producer's
// requests for their size: said once per topic, with the fix.
void KafkaSink::taken_alone(const std::string& topic) {
  if (++taken_alone_[topic] != 50) return;
  context_.warn("50 records to " + topic + " were refused together with others and taken one at a time: "
                "if the topic's max.message.bytes is under the producer's batch.size (librdkafka's default "
                "1000000), its requests are refused for their size and each record costs a round trip and a "
                "read again; set batch.size in the sink's properties to at most the topic's max.message.bytes");
}

// At least once: what a batch's done says once every record has its delivery report.
// Records the broker refused for good are remembered and the batch is read again
// (Code::rewind): one refused alone is then rejected; ones refused together are produced
// one at a time, to find which is at fault.
Status KafkaSink::outcome(BatchCompletion& c) {
  if (!c.status.is_ok()) return c.status;
  if (c.refusals.empty()) {
    refused_.written(c.spans);
    return Status::ok();
  }
  std::size_t alone = 0;
  const Refusal* first = nullptr;
  for (const Refusal& r : c.refusals) {
    const RecordSlot& s = *r.slot;
    if (s.alone) {
      refused_.remember(c.topics[s.topic], s.partition, s.offset, r.destination,
                        r.reason + " (the broker refuses it whatever the attempt)");
      if (alone++ == 0) first = &r;
    } else {
      refused_.suspect(c.topics[s.topic], s.partition, s.offset, r.destination);
    }
  }
  if (first)
    return Status::rewind(first->reason + (alone > 1 ? " (and " + std::to_string(alone - 1) + " more)" : "") +
                          "; the batch is read again so that the broker's refusals are rejected (at least "
                          "once: the batches written after it are written again)");
  return Status::rewind(std::to_string(c.refusals.size()) +
                        " record(s) refused in produce requests of several records (the broker refuses a "
                        "partition's request whole), the "
                        "first: " + c.refusals.front().reason +
                        "; the batch is read again and they are produced one at a time to find which is at "
                        "fault (at least once: the batches written after it are written again)");
}

// What becomes of a record refused for its destination once that is fixed: `pipehost
// replay` feeds a dead letter to the pipeline's first stage, so only one whose payload is
// still the source's (no encoder replaced it) can be written again.
std::string KafkaSink::replay_hint(const Record& r) {
  if (r.payload.borrowed() && r.origin.partition >= 0) return "; `pipehost replay` can write it then";
  return "; records routed there after that are written (this one's payload is a stage's, which "
         "`pipehost replay` cannot feed again)";
}

void KafkaSink::produce(Record& r, void* completion) {
  // By handle, not by name: librdkafka would look the name up (under its lock) per record.
  rd_kafka_topic_t* handle = topic_handle_;
  if (!r.destination_topic.empty()) {
    try {
      handle = know_topic(r.destination_topic);
    } catch (RecordRefused& refused) {
      refused.reason += replay_hint(r);
      throw;
    }
  } else if (!handle) {
    throw FatalError("record has no destination topic and the sink has no `topic` option");
  }
  rd_kafka_headers_t* headers = nullptr;
  if (!r.headers.empty()) {
    headers = rd_kafka_headers_new(r.headers.size());
    for (const auto& h : r.headers)
      if (h.key != kSubjectHeader)
        rd_kafka_header_add(headers, h.key.data(), static_cast<ssize_t>(h.key.size()),
                            h.null_value && h.value.empty() ? nullptr : h.value.data(),
                            static_cast<ssize_t>(h.value.size()));
  }
  while (true) {
    const std::uint64_t reports_before = reports_.load();
    rd_kafka_resp_err_t rc = rd_kafka_producev(
        producer_, RD_KAFKA_V_RKT(handle),
        // No key is a null key, as the seeds' producers write it; an empty key read from
        // Kafka stays empty (a compacted topic refuses null keys). A null value read from
        // Kafka (a tombstone) is written as one.
        RD_KAFKA_V_KEY(r.key.is_null() || (r.key.empty() && !r.key.borrowed()) ? nullptr
                                                                                : const_cast<char*>(r.key.data()),
                       r.key.size()),
        RD_KAFKA_V_VALUE(r.payload.is_null() ? nullptr : const_cast<char*>(r.payload.data()),
                         r.payload.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_TIMESTAMP(r.timestamp_ms),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(completion), RD_KAFKA_V_END);
    if (rc == RD_KAFKA_RESP_ERR_NO_ERROR) {
      produced_.fetch_add(1);
      return;
    }
    if (rc == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      // Backpressure: wait for deliveries to make room (the poller thread serves them),
      // unless the host is stopping (the broker may be down for good).
      if (context_.stopping()) {
        if (headers) rd_kafka_headers_destroy(headers);
        throw StoppedWhileFull{};
      }
      wait_for_room(reports_before);
      continue;
    }
    if (headers) rd_kafka_headers_destroy(headers);
    if (rc == RD_KAFKA_RESP_ERR__STATE && exactly_once_) throw TransactionInError{};
    const std::string what = "the record" +
                             (r.origin.partition >= 0 ? " from " + std::string(r.origin.topic) + "/" +
                                                            std::to_string(r.origin.partition) + "@" +
                                                            std::to_string(r.origin.offset)
                                                      : std::string()) +
                             " to " + rd_kafka_topic_name(handle);
    if (rc == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
      throw RecordRefused{"kafka: " + what + " is larger than message.max.bytes (" +
                          std::to_string(r.key.size() + r.payload.size()) +
                          " bytes of key and value, with headers and framing past the producer's "
                          "limit): raise message.max.bytes in the sink's properties (and the topic's "
                          "max.message.bytes), or make the record smaller"};
    // A destination a stage chose (a router's tenant) that the producer may not see, or
    // that was deleted: that record's fault, rejected per on_error, as for a missing
    // topic; the other destinations go on. The sink's own topic stops the pipeline.
    const bool own = r.destination_topic.empty() || r.destination_topic == topic_;
    if (!own && (gone_or_hidden(rc) || rc == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED))
      throw RecordRefused{"kafka: cannot produce " + what + ": " + error_text(rc) +
                          " (grant this producer Describe and Write on the topic, or create it)" +
                          replay_hint(r)};
    throw FatalError("cannot produce " + what + ": " + error_text(rc));
  }
}

void KafkaSink::prepare(Batch& batch) { refused_.reject_in(batch); }

// Until a delivery report came after reports_before (the report that frees room may
// have come between the full queue and here: then no wait), or 100 ms pass, so that a
// stop request is seen while the broker is away.
void KafkaSink::wait_for_room(std::uint64_t reports_before) {
  std::unique_lock lock(room_mutex_);
  waiting_for_room_.store(true);
  room_.wait_for(lock, std::chrono::milliseconds(100),
                 [&] { return reports_.load() != reports_before || context_.stopping(); });
  waiting_for_room_.store(false);
}

// Until every record produced so far has its delivery report, or the host stops.
void KafkaSink::wait_for_deliveries() {
  const std::uint64_t produced = produced_.load();
  while (reports_.load() < produced && !context_.stopping()) wait_for_room(reports_.load());
}

// As wait_for_deliveries, for a record produced alone: sent at once (rd_kafka_flush does
// not wait out linger.ms), so that records refused together cost a round trip each to
// tell apart, not linger.ms each too.
void KafkaSink::send_and_wait() {
  const std::uint64_t produced = produced_.load();
  while (reports_.load() < produced && !context_.stopping()) rd_kafka_flush(producer_, 100);
}

void KafkaSink::write(Batch& batch, BatchDone done) {
  if (exactly_once_) return write_transaction(batch, std::move(done));
  std::size_t n = batch.records.size();
  if (n == 0) {
    // Every record rejected before (refused ones read again): their refusals are done with.
    std::vector<RefusedCopies::Passed> passed;
    for (const Span& s : batch.spans)
      if (s.from >= 0) passed.push_back({std::string(s.topic), s.partition, s.from, s.next});
    refused_.written(passed);
    return done(Status::ok());
  }
  auto* completion = new BatchCompletion{};
  completion->remaining = n + 1;  // + 1 held by this call until every record is handed over
  completion->done = std::move(done);
  completion->delivered = delivered_;
  completion->slots.resize(n);
  completion->spans.reserve(batch.spans.size());
  for (const Span& s : batch.spans) {
    std::int64_t from = s.from;  // unknown: from its first record here
    for (std::size_t i = 0; from < 0 && i < n; ++i)
      if (batch.records[i].origin.partition == s.partition && batch.records[i].origin.topic == s.topic)
        from = batch.records[i].origin.offset;
    completion->spans.push_back({std::string(s.topic), s.partition, from < 0 ? s.next : from, s.next});
  }
  completion->outcome = [this](BatchCompletion& c) { return outcome(c); };
  // Every slot before the first record is produced: delivery reports read the slots and
  // the topics while this loop would still be adding to them.
  const bool suspects = refused_.any_suspects();
  for (std::size_t i = 0; i < n; ++i) {
    const Record& r = batch.records[i];
    RecordSlot& slot = completion->slots[i];
    slot = {completion, r.origin.offset, r.origin.partition, 0, false};
    if (r.origin.partition >= 0) slot.topic = completion->topic_index(r.origin.topic);
    // One of records the broker refused together: produced alone (nothing else in
    // flight, and nothing after it until its report), so its refusal is its own.
    slot.alone = suspects && refused_.is_suspect(r);
  }
  std::size_t produced = 0;
  try {
    for (std::size_t i = 0; i < n; ++i) {
      const Record& r = batch.records[i];
      RecordSlot& slot = completion->slots[i];
      try {
        if (slot.alone) wait_for_deliveries();
        produce(batch.records[i], &slot);
        ++produced;
        if (slot.alone) {
          send_and_wait();
          if (std::optional<std::string> why = completion->take_refusal(&slot)) {
            // Refused alone: its own fault, rejected now (the host deals with it before
            // acknowledging the batch), and remembered should the batch be read again.
            *why += " (the broker refuses it whatever the attempt)";
            refused_.remember(r.origin, r.destination_topic, *why);
            batch.reject(i, std::move(*why));
          } else {
            taken_alone(r.destination_topic.empty() ? topic_ : r.destination_topic);
          }
        }
      } catch (RecordRefused& refused) {  // dead-lettered by the host; settled below
        batch.reject(i, std::move(refused.reason));
      }
    }
  } catch (const StoppedWhileFull&) {
    completion->fail(Status::cancelled("stopping while the producer's queue is full"));
  } catch (const std::exception& e) {
    completion->fail(Status::fatal(e.what()));
  }
  // Records never handed to librdkafka will not report: settle them here. done is called
  // once, by whoever settles last, and write never throws after producing a record.
  completion->settle(n - produced + 1);
}

void KafkaSink::flush() {
  // exactly_once: every transaction was committed or aborted (nothing left to deliver), or
  // abandoned at a stop, whose records the broker discards or commits without us.
  if (!producer_ || exactly_once_) return;
  // Bounded: records still undelivered after this are not acknowledged, so their source
  // positions are not committed and they are produced again on the next run. While the
  // host stops (it has waited up to 30 s for these very records already), records with
  // no delivery report for 5 s, or none since an earlier flush gave up, are given up at
  // once: the stop's waits must not add up to minutes with the broker gone.
  // Counted as records produced less reports, not by rd_kafka_outq_len: that also counts
  // librdkafka's events, which a broker that is down keeps making and serving (measured
  // by it, a stuck queue looked moving for 30 s).
  auto undelivered = [&] { return produced_.load() - reports_.load(); };
  if (undelivered() == 0) {
    gave_up_at_reports_.reset();
    return;
  }
  if (context_.stopping() && gave_up_at_reports_ == reports_.load()) return;
  int seconds = 0, still = 0;
  for (; seconds < 30 && undelivered() > 0; ++seconds) {
    const std::uint64_t reports_before = reports_.load();
    rd_kafka_flush(producer_, 1000);
    still = reports_.load() != reports_before ? 0 : still + 1;
    if (context_.stopping() && still >= 5) break;
  }
  if (const std::uint64_t left = undelivered(); left > 0) {
    gave_up_at_reports_ = reports_.load();
    context_.warn(std::to_string(left) + " records still waiting for the broker after " +
                  std::to_string(seconds) + " s; they are produced again on the next run");
  }
}

void KafkaSink::stop() {
  flush();
  stop_poller();
}

// Yielding the main queue ends the poller's rd_kafka_poll at once (or its next one:
// librdkafka keeps the flag), so stopping does not wait out the 50 ms poll at the end of
// every run. (rd_kafka_yield only works from inside a callback.)
void KafkaSink::stop_poller() {
  polling_ = false;
  if (producer_ && poller_.joinable()) {
    rd_kafka_queue_t* main_queue = rd_kafka_queue_get_main(producer_);
    rd_kafka_queue_yield(main_queue);
    rd_kafka_queue_destroy(main_queue);
  }
  if (poller_.joinable()) poller_.join();
}

}  // namespace pipehost::kafka
