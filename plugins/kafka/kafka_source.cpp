#include "kafka_source.hpp"

#include <algorithm>
#include <chrono>

#include "kafka_config.hpp"

namespace pipehost::kafka {

void KafkaSourceConfig::declare(OptionList<KafkaSourceConfig>& o) {
  o.required("topics", &KafkaSourceConfig::topics, "topics to consume");
  o.required("group", &KafkaSourceConfig::group, "consumer group id").pattern(".+");
  o.add("start", &KafkaSourceConfig::start,
        "where a group without committed offsets starts, and where a position the broker has "
        "deleted (retention) goes on: latest skips the records still there (logged as lost). "
        "It applies to each partition the group has no offset for: with latest, a partition "
        "added to a topic while the pipeline runs starts at its end (its first records are "
        "not read, and not logged)")
      .one_of({"earliest", "latest"});
  o.add("instance_id", &KafkaSourceConfig::instance_id,
        "static group membership: a stable id per process (the task number is appended), so a "
        "restart within session.timeout.ms keeps its partitions without a rebalance; empty: "
        "dynamic membership");
  o.add("stop_at_end", &KafkaSourceConfig::stop_at_end,
        "end the pipeline once the group has read every partition to its end (like kcat -e); "
        "otherwise run until stopped");
  o.add("headers", &KafkaSourceConfig::headers,
        "copy each record's Kafka headers into it (except pipehost.subject, which only the "
        "router sets), for stages that read them, the kafka sink and dead letters; false skips them, for pipelines that use none (librdkafka 2.0.2 "
        "allocates a parse buffer even for a record without headers: ~9 % of a live "
        "consumer's thread)");
  o.add("properties", &KafkaSourceConfig::properties,
        "extra librdkafka consumer properties for this stage, e.g. { \"fetch.wait.max.ms\" = 5 }");
}

void KafkaSourceConfig::check(Checker& c) const {
  if (topics.empty()) c.problem("topics", "is empty: name at least one topic");
  for (const auto& t : topics) {
    if (t.empty()) c.problem("topics", "holds an empty topic name");
    else if (!is_kafka_topic_name(t))
      c.problem("topics", "'" + t + "' is not a Kafka topic name (1-249 of letters, digits, '.', '_', '-')");
  }
  check_properties(properties, c);
  if (c.connect()) check_broker(c);
}

KafkaSource::KafkaSource(const Config& config, Context& context)
    : context_(context),
      topics_(config.topics),
      group_(config.group),
      properties_(config.properties),
      start_(config.start),
      instance_id_(config.instance_id),
      finish_at_end_(config.stop_at_end),
      headers_(config.headers) {
  received_ = &context.counter("records_in");
  commits_ = &context.counter("commits");
  commit_failures_ = &context.counter("commit_failures");
  skipped_ = &context.counter("offsets_without_records");
  lost_ = &context.counter("offsets_lost");
  fetcher_wakes_ = &context.counter("fetcher_wakes");
  link_ = task_link(context.pipeline(), context.task_index());
}

KafkaSource::~KafkaSource() {
  unlink();
  stop_waker();  // stop() was not called (a failed start)
  if (queue_) rd_kafka_queue_destroy(queue_);  // a handle: even a consumer left open frees it
  if (!consumer_) return;  // see stop()
  if (!ever_assigned_ && subscribed_ && cooperative_) return;  // see stop(); one that never joined a group is safe
  rd_kafka_destroy(consumer_);
}

void KafkaSource::start() {
  StringMap defaults = {
      {"group.id", group_},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", start_},
      {"enable.partition.eof", "true"},
      // Eager, not cooperative-sticky: librdkafka 2.0.2 loses a cooperative member's
      // assignment when a commit meets ILLEGAL_GENERATION during a rebalance (its issue
      // #4059, fixed in 2.10), and the next owner reads again everything after the last
      // commit that got through (measured: 3 of 6 runs of 500k records with 3 tasks
      // routed 116k-124k duplicates; roundrobin: 0 in 12). Rebalances stop the world.
      {"partition.assignment.strategy", "roundrobin"},
      {"session.timeout.ms", "6000"},
      {"heartbeat.interval.ms", "1000"},
      // Small prefetch: librdkafka's default (64 MiB) breaks a small memory budget, and
      // this source wakes a stopped fetcher once its queue is down to half (see
      // wake_below_half_full) or empty (wake_stalled_fetchers), so the queue need not
      // hold a second of records to keep them busy. 1 MiB: ~60 MB peak for 3 tasks
      // draining a 2M backlog, as fast as 16 MiB (bench/NOTES.md).
      {"queued.max.messages.kbytes", "1024"},
      {"fetch.wait.max.ms", "10"},
      // Partitions added to a topic are seen at the next metadata refresh: librdkafka's
      // 5 minutes left their records waiting that long (and the lag metric said 0).
      {"topic.metadata.refresh.interval.ms", "30000"},
  };
  if (!instance_id_.empty())  // static membership: a restart within the session keeps the partitions
    defaults["group.instance.id"] = instance_id_ + "-" + std::to_string(context_.task_index());
  rd_kafka_conf_t* conf = make_conf(context_, defaults, properties_);
  // Known from the configuration, not asked in the rebalance callback: during
  // rd_kafka_consumer_close, librdkafka 2.0.2's rd_kafka_rebalance_protocol() waits for an
  // answer from the group thread that is waiting for the close (a hang, seen in CI), or
  // returns NULL. librdkafka refuses to mix eager and cooperative assignors.
  char strategy[256] = "";
  size_t strategy_size = sizeof strategy;
  if (rd_kafka_conf_get(conf, "partition.assignment.strategy", strategy, &strategy_size) ==
      RD_KAFKA_CONF_OK)
    cooperative_ = std::string_view(strategy).find("cooperative") != std::string_view::npos;
  // Half the thresholds: librdkafka counts its queue's bytes its own way.
  stall_bytes_ = static_cast<std::size_t>(conf_number(conf, "queued.max.messages.kbytes", 65536)) * 512;
  stall_messages_ = static_cast<std::size_t>(conf_number(conf, "queued.min.messages", 100000)) / 2;
  rd_kafka_conf_set_opaque(conf, this);
  rd_kafka_conf_set_rebalance_cb(conf, &KafkaSource::on_rebalance);
  rd_kafka_conf_set_offset_commit_cb(conf, &KafkaSource::on_commit);
  char err[512];
  consumer_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!consumer_) throw FatalError(std::string("cannot create the Kafka consumer: ") + err);
  rd_kafka_poll_set_consumer(consumer_);
  {
    std::lock_guard lock(link_->mutex);
    link_->consumer = consumer_;
  }
  queue_ = rd_kafka_queue_get_consumer(consumer_);
  start_waker();
  // Before subscribing: a subscription's metadata request names its topics, and a broker
  // that creates topics on demand (the embedded one) would create a misspelled one.
  check_topics_exist(finish_at_end_);
  rd_kafka_topic_partition_list_t* subscription =
      rd_kafka_topic_partition_list_new(static_cast<int>(topics_.size()));
  for (const auto& t : topics_)
    rd_kafka_topic_partition_list_add(subscription, t.c_str(), RD_KAFKA_PARTITION_UA);
  context_.set_ready(false);  // until the group assigns partitions
  set_joining(true);
  rd_kafka_resp_err_t rc = rd_kafka_subscribe(consumer_, subscription);
  rd_kafka_topic_partition_list_destroy(subscription);
  if (rc) throw FatalError("cannot subscribe to " + topics_.front() + ": " + error_text(rc));
  subscribed_ = true;
  context_.info("consumer of group '" + group_ + "' subscribed to " + topics_.front() +
                (topics_.size() > 1 ? " and " + std::to_string(topics_.size() - 1) + " more" : ""));
}

std::string_view KafkaSource::intern(const char* topic) {
  auto it = interned_.find(std::string_view(topic));
  if (it == interned_.end()) it = interned_.emplace(topic).first;
  return *it;
}

void KafkaSource::take(rd_kafka_message_t* m, Batch& out) {
  bool kept = false;  // a record's message lives as long as the batch
  try {
    take_message(m, out, kept);
  } catch (...) {
    // Not left behind: librdkafka's consumer cannot close while a message is alive.
    rd_kafka_message_destroy(m);
    throw;
  }
  if (kept)
    out.hold(m, [](void* message) { rd_kafka_message_destroy(static_cast<rd_kafka_message_t*>(message)); });
  else
    rd_kafka_message_destroy(m);
}

// The batch's span of the partition last_ names (found once per run of its messages),
// added, starting at `from`, when the batch has none yet.
Span& KafkaSource::span_of(Batch& out, std::string_view topic, std::int32_t partition, std::int64_t from) {
  if (last_.span == LastPartition::kNoSpan) {
    if (span_slots_.size() != out.spans.size()) {  // a batch this poll did not start
      span_slots_.clear();
      for (const Span& s : out.spans) span_slots_.slot(s.topic, s.partition);
    }
    auto [at, added] = span_slots_.slot(topic, partition);
    if (added) out.spans.push_back(Span{topic, partition, from, 0});
    last_.span = at;
  }
  return out.spans[last_.span];
}

void KafkaSource::take_message(rd_kafka_message_t* m, Batch& out, bool& kept) {
  // Before the partition's lookup: an error need not name a topic (rkt is null when all
  // brokers are down, for one).
  if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    if (rd_kafka_fatal_error(consumer_, nullptr, 0))
      throw FatalError("Kafka consumer: " + error_text(m->err));
    const std::string where = m->rkt ? " at " + std::string(rd_kafka_topic_name(m->rkt)) + "/" +
                                           std::to_string(m->partition) + "@" + std::to_string(m->offset)
                                     : std::string();
    // Records librdkafka could not read (a corrupt or CRC-failing batch, a compression or
    // format it does not know): it skips them or fetches them again forever; either way
    // going on would move the committed offset past records never delivered.
    if (m->err == RD_KAFKA_RESP_ERR__BAD_MSG || m->err == RD_KAFKA_RESP_ERR__BAD_COMPRESSION ||
        m->err == RD_KAFKA_RESP_ERR__NOT_IMPLEMENTED)
      throw FatalError("Kafka consumer cannot read the records" + where + ": " +
                       rd_kafka_message_errstr(m) + " (" + error_text(m->err) +
                       "); nothing past them is committed. Inspect the partition (kcat -o OFFSET), "
                       "then move the group past them with pipehost positions --reset-to if they are lost");
    const auto now = std::chrono::steady_clock::now();
    if (m->err != last_warned_error_ || now - last_warned_at_ > std::chrono::seconds(10)) {
      last_warned_error_ = m->err;
      last_warned_at_ = now;
      context_.warn("Kafka consumer" + where + ": " + rd_kafka_message_errstr(m) + " (" +
                    error_text(m->err) + "; librdkafka retries)");
    }
    return;
  }
  if (m->rkt != last_.topic_handle || m->partition != last_.partition) {
    last_.topic_handle = m->rkt;
    last_.partition = m->partition;
    last_.topic = intern(rd_kafka_topic_name(m->rkt));
    auto it = assigned_.find({last_.topic, m->partition});
    last_.state = it != assigned_.end() ? &it->second : nullptr;
    last_.span = LastPartition::kNoSpan;
  }
  const std::string_view topic = last_.topic;
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    if (!last_.state) return;
    PartitionState& state = *last_.state;
    // Every record before the end has been delivered: the consumer is at this offset. Or
    // it jumped there: a position before the log's start reset to the end (all its records
    // deleted, or start = "latest"), which the next span must say, or a sink holding the
    // old position would have the source read from it again, and jump again, forever.
    state.at_end = true;
    if (state.assigned_from < 0) state.assigned_from = m->offset;
    note_gap(topic, m->partition, state, m->offset);
    if (state.read_to == Span::kAfterLostRecords) {
      state.lost_before = true;
      state.read_to = m->offset;
    }
    state.read_to = std::max(state.read_to, static_cast<std::int64_t>(m->offset));
    if (state.span_from < 0) state.span_from = m->offset;
    // Offsets without a record before the end (a transaction's commit marker, aborted or
    // compacted records): a span of no records takes the sink's position past them, to
    // where the group's offset goes at the end (commit_ends). Else a sink storing
    // positions stayed before the marker, "behind the group's committed offset" at every
    // restart, with a lag of 1 for good.
    if (!state.lost_before && state.read_to > state.span_from) {
      span_of(out, topic, m->partition, state.span_from).next = state.read_to;
      state.span_from = state.read_to;
    }
    return;
  }
  if (!last_.state) return;  // a partition revoked since it was fetched
  PartitionState& state = *last_.state;
  if (m->offset < state.resumed_at && state.taken_to < 0) refuse_foreign_position(topic, m->partition, state);
  note_gap(topic, m->partition, state, m->offset);
  const bool lost = state.lost_before || state.read_to == Span::kAfterLostRecords;
  span_of(out, topic, m->partition, lost ? Span::kAfterLostRecords : state.span_from).next = m->offset + 1;
  state.lost_before = false;
  if (state.first_read < 0) state.first_read = state.read_to >= 0 ? std::min(state.read_to, m->offset) : m->offset;
  if (state.assigned_from < 0) state.assigned_from = m->offset;
  state.read_to = m->offset + 1;
  state.taken_to = m->offset + 1;
  state.span_from = m->offset + 1;
  state.at_end = false;

  Record& r = out.add();
  kept = true;
  // No copy: the bytes stay in librdkafka's message, which the batch holds.
  if (m->key) r.key.borrow({static_cast<const char*>(m->key), m->key_len});
  else r.key.borrow_null();
  if (m->payload) r.payload.borrow({static_cast<const char*>(m->payload), m->len});
  else r.payload.borrow_null();  // a tombstone stays one (in dead letters too)
  r.timestamp_ms = rd_kafka_message_timestamp(m, nullptr);
  r.origin = {topic, m->partition, m->offset};
  rd_kafka_headers_t* headers = nullptr;
  if (headers_ && rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name;
    const void* value;
    size_t size;
    for (size_t i = 0; !rd_kafka_header_get_all(headers, i, &name, &value, &size); ++i)
      if (name != kSubjectHeader)
        r.headers.push_back(value ? Header{name, std::string(static_cast<const char*>(value), size)}
                                  : Header{name, std::string(), true});
  }
}

PollResult KafkaSource::poll(Batch& out, Millis max_wait) {
  settle_resumed();
  // Wait for the first message only, then take what is already there: low latency at
  // low rates, full batches under load. With records waiting on the broker, a fetcher
  // answers within fetch.wait.max.ms: silence past kStallWait means it stopped (see
  // wake_stalled_fetchers).
  const int wait = static_cast<int>(max_wait.count());
  const int stall_wait = std::min(wait, kStallWaitMs);
  rd_kafka_message_t* first = nullptr;
  const bool recently_stalled =
      std::chrono::steady_clock::now() - stall_possible_at_ < std::chrono::seconds(2);
  if (stall_wait < wait && !paused_ && (recently_stalled || records_waiting())) {
    first = rd_kafka_consumer_poll(consumer_, stall_wait);
    if (!first) {
      wake_stalled_fetchers();
      first = rd_kafka_consumer_poll(consumer_, wait - stall_wait);
    }
  } else {
    first = rd_kafka_consumer_poll(consumer_, wait);
  }
  if (first) {
    std::vector<rd_kafka_message_t*>& more = scratch_;  // reused: no allocation per poll
    more.resize(out.capacity > 1 ? out.capacity - 1 : 1);
    ssize_t n = rd_kafka_consume_batch_queue(queue_, 0, more.data(), more.size());
    last_ = {};  // a rebalance may have come with the messages
    span_slots_.clear();
    std::size_t payload_bytes = 0;  // what librdkafka counts against its byte threshold
    auto count_and_take = [&](rd_kafka_message_t* m) {
      payload_bytes += m->len;  // before take(), which may destroy m
      run_bytes_ += m->len + m->key_len;
      take(m, out);
    };
    ssize_t rest = 0;  // the first of `more` not taken yet
    try {
      count_and_take(first);
      while (rest < n) count_and_take(more[static_cast<std::size_t>(rest++)]);
    } catch (...) {
      // take() destroyed the message that threw; the ones after it are not left alive.
      for (ssize_t i = rest; i < n; ++i) rd_kafka_message_destroy(more[static_cast<std::size_t>(i)]);
      throw;
    }
    const std::size_t taken = static_cast<std::size_t>(n) + 1;
    run_messages_ += taken;
    const bool stall_possible = run_bytes_ >= stall_bytes_ || run_messages_ >= stall_messages_;
    if (stall_possible) stall_possible_at_ = std::chrono::steady_clock::now();
    if (n < static_cast<ssize_t>(more.size())) {
      // The queue just ran dry after a run that may have passed a threshold: if the
      // broker holds more, its fetcher may have stopped. A consumer keeping up with live
      // records takes short runs and never wakes anything.
      if ((stall_possible || queue_was_high_) && !paused_) wake_stalled_fetchers();
      run_bytes_ = run_messages_ = 0;
      queue_was_high_ = false;
    } else {
      wake_below_half_full(taken, payload_bytes);
    }
  }
  settle_resumed();
  received_->add(out.records.size());
  update_lag();
  return finish_at_end_ && caught_up() ? PollResult::end : PollResult::more;
}

// Lag per partition for the metrics: the records after what the sink acknowledged (or,
// before any acknowledgement, after where reading began), from the partitions' ends (see
// consumer_lag.hpp). At most once a second.
void KafkaSource::update_lag() {
  auto now = std::chrono::steady_clock::now();
  if (now - last_lag_update_ < std::chrono::seconds(1)) return;
  last_lag_update_ = now;
  std::vector<ConsumerLag::Partition> partitions;
  partitions.reserve(assigned_.size());
  for (auto& [tp, state] : assigned_) {
    auto acked = acknowledged_.find(tp);
    const std::int64_t position = acked != acknowledged_.end() ? acked->second
                                  : state.first_read >= 0      ? state.first_read
                                                               : state.read_to;
    partitions.push_back({std::string(tp.first), tp.second, position, state.lag});
  }
  lag_.publish(consumer_, std::move(partitions));
}

// The first record after resuming from the sink's position came from below it: that
// position was past the end of the log, and librdkafka started the partition again per
// auto.offset.reset. The log is not the one the sink's position counts in (the topic was
// deleted and made again, or the sink's data came from another cluster); going on would
// take this log's records for applied ones and skip them.
void KafkaSource::refuse_foreign_position(std::string_view topic, std::int32_t partition,
                                          const PartitionState& state) {
  std::int64_t low = 0, high = 0;
  cached_watermarks(topic, partition, low, high);
  throw FatalError("the sink's stored position of " + std::string(topic) + "/" + std::to_string(partition) +
                   " is " + std::to_string(state.resumed_at) + ", past the end of that partition's log (" +
                   std::to_string(high) + " records): the topic was deleted and created again, or "
                   "the sink's data comes from another cluster. Skipping would lose this log's "
                   "records: point the sink at data of this cluster, or delete its stored position of " +
                   std::string(topic) + "/" + std::to_string(partition) + " to read the partition from its start");
}

// Offsets without a record are normal: transaction markers, aborted transactions,
// compacted keys. Offsets the broker deleted before we read them (retention; the
// embedded broker keeps only ~5 MiB per partition) are records lost: say so loudly, and
// claim no continuity for what follows.
void KafkaSource::note_gap(std::string_view topic, std::int32_t partition, PartitionState& state,
                           std::int64_t offset) {
  if (state.read_to < 0 || offset <= state.read_to) return;
  std::int64_t low = 0, high = 0;
  cached_watermarks(topic, partition, low, high);
  if (low > state.read_to) {
    const std::string where = " of " + std::string(topic) + "/" + std::to_string(partition);
    lost_->add(static_cast<std::uint64_t>(low - state.read_to));
    context_.error("offsets " + std::to_string(state.read_to) + ".." + std::to_string(low - 1) + where +
                   " were deleted by the broker before they were read (retention; the embedded "
                   "broker keeps only ~5 MiB per partition): those records are lost");
    // librdkafka resets a position before the log's start by auto.offset.reset: with
    // "latest" it also jumps over what is still there.
    if (start_ == "latest" && offset > low) {
      lost_->add(static_cast<std::uint64_t>(offset - low));
      context_.error("offsets " + std::to_string(low) + ".." + std::to_string(offset - 1) + where +
                     ", still on the broker, were skipped too: start = \"latest\" also applies to a "
                     "position the broker no longer has (set start = \"earliest\" to read from the "
                     "oldest record instead)");
    }
    state.read_to = Span::kAfterLostRecords;
  } else {
    skipped_->add(static_cast<std::uint64_t>(offset - state.read_to));
  }
}


void KafkaSource::unlink() {
  std::lock_guard lock(link_->mutex);
  if (link_->consumer == consumer_) link_->consumer = nullptr;
}

bool KafkaSource::sink_commits() {
  std::lock_guard lock(link_->mutex);
  return link_->offsets_in_transactions;
}

void KafkaSource::stop() {
  unlink();
  stop_waker();  // before the consumer closes: its queries use the consumer
  if (!consumer_) return;
  if (!subscribed_) {  // start failed before (a missing topic): no group to wait for
    rd_kafka_consumer_close(consumer_);
    return;
  }
  // librdkafka 2.0.2 aborts (sticky assignor state, its issue #4312) when a
  // cooperative-sticky consumer is closed before its first assignment: wait for it. An
  // eager member waits too, so that no join in progress is served from inside close (see
  // leave_group), but one the group never assigns is closed (the abort is the sticky
  // assignor's), not left in the group holding partitions it never reads.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!ever_assigned_ && std::chrono::steady_clock::now() < deadline) {
    if (rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_, 100)) rd_kafka_message_destroy(m);
  }
  if (!ever_assigned_ && cooperative_) {
    context_.warn("the group never assigned this consumer; leaving it without closing");
    consumer_ = nullptr;  // leaked on purpose: destroying it would abort the process
    return;
  }
  commit_sync(nullptr);
  leave_group();
  rd_kafka_consumer_close(consumer_);
}

// Gives up the assignment through the normal poll path before closing. A rebalance still
// waiting for this consumer is otherwise served from inside rd_kafka_consumer_close, and
// there librdkafka 2.0.2's rd_kafka_assign() (which the rebalance callback must call)
// can wait forever for the group thread that is terminating (caught with gdb: 2 hangs in
// 11 runs of SIGTERM just after the group assigned, every member closing at once).
// Unsubscribed and unassigned, the member has nothing left for close to revoke.
void KafkaSource::leave_group() {
  rd_kafka_resp_err_t rc = rd_kafka_unsubscribe(consumer_);
  if (rc) return context_.warn("leaving the group: " + error_text(rc));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!assigned_.empty() && std::chrono::steady_clock::now() < deadline)
    if (rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_, 100))
      rd_kafka_message_destroy(m);  // not handed to the host: read again by the next owner
}

}  // namespace pipehost::kafka
