#include "kafka_source.hpp"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <thread>

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

void KafkaSource::on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                               rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  auto* self = static_cast<KafkaSource*>(opaque);
  const bool cooperative = self->cooperative_;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    self->assign(partitions);
    if (cooperative) rd_kafka_incremental_assign(rk, partitions);
    else rd_kafka_assign(rk, partitions);
    if (self->paused_) self->pause_partitions(partitions, true);
  } else {
    self->revoke(partitions);
    if (cooperative) rd_kafka_incremental_unassign(rk, partitions);
    else rd_kafka_assign(rk, nullptr);
  }
}

void KafkaSource::assign(rd_kafka_topic_partition_list_t* partitions) {
  assignment_seen_ = true;
  ever_assigned_ = true;
  std::string names;
  for (int i = 0; i < partitions->cnt; ++i) {
    rd_kafka_topic_partition_t& p = partitions->elems[i];
    std::string_view topic = intern(p.topic);
    PartitionState& state = assigned_[{topic, p.partition}] = PartitionState{};
    state.lag = &context_.gauge("consumer_lag", {{"topic", std::string(topic)},
                                                 {"partition", std::to_string(p.partition)}});
    // A transactional sink's positions are the group's offsets: nothing to ask.
    if (auto resume = sink_commits() ? std::nullopt : context_.resume_position(topic, p.partition)) {
      p.offset = *resume;
      state.read_to = *resume;  // the first record read continues from the sink's position
      state.span_from = *resume;
      state.resumed_at = *resume;
      state.assigned_from = *resume;
      // What the sink holds is acknowledged: commit it, or the group's offset would lag
      // forever when nothing is left to read (and stop_at_end would never see the end).
      resumed_.push_back({topic, p.partition, *resume});
    }
    names += (names.empty() ? "" : ", ") + std::string(topic) + "/" + std::to_string(p.partition) +
             (p.offset >= 0 ? "@" + std::to_string(p.offset) : "");
  }
  if (partitions->cnt) context_.info("assigned " + names);
  context_.set_ready(true);  // an empty assignment too: the group has answered
  set_joining(false);
}

// A sink's stored position behind the group's committed offset: the sink's data end
// before records the group has had delivered. Right after its store was restored from a
// backup (the records are written again, as they must be); but when the store holds them
// under another name (the pipeline renamed and back, a positions key shared), they are
// written twice. Reading from the sink's position is kept; the user is told which.
void KafkaSource::warn_if_behind_group(const std::vector<Position>& resumed) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(resumed.size()));
  for (const auto& p : resumed) rd_kafka_topic_partition_list_add(list, std::string(p.topic).c_str(), p.partition);
  if (rd_kafka_committed(consumer_, list, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < list->cnt; ++i) {
      const rd_kafka_topic_partition_t& c = list->elems[i];
      const std::int64_t stored = resumed[static_cast<std::size_t>(i)].next_offset;
      if (c.err || c.offset < 0 || c.offset <= stored) continue;
      context_.warn("the sink's stored position of " + std::string(c.topic) + "/" + std::to_string(c.partition) +
                    " is " + std::to_string(stored) + ", behind the group's committed offset " +
                    std::to_string(c.offset) + ": reading again from " + std::to_string(stored) + ". Right if "
                    "the sink's store was restored from a backup; if it holds those records under another "
                    "name (the pipeline renamed and back, a positions key or table shared), they are counted twice");
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
}

void KafkaSource::revoke(rd_kafka_topic_partition_list_t* partitions) {
  // What the sink acknowledged since the host's last commit (up to commit_interval_ms of
  // records) is committed now, or the next owner would read it all again.
  rd_kafka_topic_partition_list_destroy(accept(context_.take_acknowledged()));
  commit_sync(nullptr);
  std::string names;
  for (int i = 0; i < partitions->cnt; ++i) {
    std::string_view topic = intern(partitions->elems[i].topic);
    auto it = assigned_.find({topic, partitions->elems[i].partition});
    lag_.forget(topic, partitions->elems[i].partition);
    if (it != assigned_.end() && it->second.lag) it->second.lag->clear();
    assigned_.erase({topic, partitions->elems[i].partition});
    acknowledged_.erase({topic, partitions->elems[i].partition});
    sent_.erase({topic, partitions->elems[i].partition});
    names += (names.empty() ? "" : ", ") + std::string(topic) + "/" +
             std::to_string(partitions->elems[i].partition);
  }
  if (partitions->cnt) context_.info("revoked " + names);
  // With nothing left, whether this member is caught up is unknown until the group
  // assigns again (after a lost session, e.g. a broker restart).
  if (assigned_.empty()) {
    assignment_seen_ = false;
    context_.set_ready(false);  // until the group assigns again
    set_joining(true);
  }
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

// Positions resumed from the sink (in a rebalance callback, inside librdkafka's poll):
// checked against the group's offset and committed before poll returns, so before the
// host can write and commit anything read since (checked at the next poll, the group's
// offset was this member's own by then: a false "behind the group").
void KafkaSource::settle_resumed() {
  if (resumed_.empty()) return;
  warn_if_behind_group(resumed_);
  commit(resumed_);
  resumed_.clear();
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

// librdkafka 2.0.2 stops fetching a partition while the consumer's queue is past
// queued.min.messages or queued.max.messages.kbytes, and decides again only when the
// partition's broker thread wakes up: on network or internal activity, else after a
// second (later releases made that second `fetch.queue.backoff.ms`). A consumer that
// empties its queue meanwhile sits idle for the rest of the second with records waiting
// on the broker, unless the queue holds a second of records (memory). Only a queue that
// held half a threshold's worth since it was last empty can have passed one (librdkafka
// counts payload bytes only; this source counts keys too). So when this source empties
// its queue after such a run, or a poll finds nothing for kStallWaitMs within 2 s of one
// (or while a partition is behind its cached high watermark), the waker thread asks the
// leaders for the latest offsets: the request is served by each leader's broker thread,
// which wakes up, decides again and fetches. One round at a time; never from a consumer
// that keeps up with live records in short runs (measured at 400k records/s: 6,556
// wakes in 26 s when every full batch counted as a possible stall, ~100 with the run's
// size, each a request the broker serves).
// Measured (2M records, 1 task, bench/NOTES.md): 9.7-11.7 s to drain with a 16 MiB
// queue without it, 1.3-2.5 s with a 1 MiB queue with it; with the earlier wake at half
// a queue (wake_below_half_full) 1.34 -> 1.67 M records/s.
bool KafkaSource::records_waiting() {
  for (const auto& [tp, state] : assigned_) {
    if (state.read_to < 0 || state.at_end) continue;
    std::int64_t low = 0, high = -1;
    if (cached_watermarks(tp.first, tp.second, low, high) && high > state.read_to) return true;
  }
  return false;
}

// The watermarks librdkafka cached with its last fetch: no request. `topic` comes from
// intern(), so its data() ends with a NUL.
bool KafkaSource::cached_watermarks(std::string_view topic, std::int32_t partition,
                                    std::int64_t& low, std::int64_t& high) {
  return rd_kafka_get_watermark_offsets(consumer_, topic.data(), partition, &low, &high) ==
         RD_KAFKA_RESP_ERR_NO_ERROR;
}

// A backlog fills the queue with whole fetch responses and stops the fetcher at the
// threshold; waiting for the queue to run dry before waking it leaves the consumer idle
// for the fetch's round trip, with records waiting on the broker. So, while full batches
// come, the queue's size is estimated (its message count from librdkafka, times this
// poll's mean payload: librdkafka keeps the byte count to itself), and the fetcher is
// woken once the queue, seen at half a threshold or more, falls below half: the other
// half is still queued while the fetch travels. One wake per such crossing, at most one
// per fetch response that filled the queue.
void KafkaSource::wake_below_half_full(std::size_t taken, std::size_t payload_bytes) {
  const std::size_t queued = static_cast<std::size_t>(rd_kafka_queue_length(queue_));
  const std::size_t queued_bytes = queued * (payload_bytes / taken);
  const bool high = queued_bytes >= stall_bytes_ || queued >= stall_messages_;
  if (high) {
    queue_was_high_ = true;
  } else if (queue_was_high_ && !paused_) {
    queue_was_high_ = !wake_stalled_fetchers();  // else the next poll tries again
  }
}

// False while a round is still under way: one round at a time.
bool KafkaSource::wake_stalled_fetchers() {
  std::lock_guard lock(wake_mutex_);
  if (!waker_.joinable()) return true;
  if (!wake_partitions_.empty()) return false;
  for (const auto& [tp, state] : assigned_)
    if (!state.at_end) wake_partitions_.emplace_back(tp.first, tp.second);
  if (wake_partitions_.empty()) return true;
  fetcher_wakes_->add();
  wake_changed_.notify_one();
  return true;
}

// The waker thread: asks the leaders for the partitions' latest offsets, one request per
// leader (the answer is not needed, only the request reaching each leader's broker
// thread). The query waits for the answers, so it runs here rather than in poll. While
// the member is joining the group it also nudges the group every kGroupNudge.
void KafkaSource::start_waker() {
  waker_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "kafka-waker");
    constexpr auto kGroupNudge = std::chrono::milliseconds(100);
    constexpr auto kLagRefresh = std::chrono::seconds(5);
    std::unique_lock lock(wake_mutex_);
    auto work = [&] { return waker_stopping_ || !wake_partitions_.empty(); };
    auto next_lag = std::chrono::steady_clock::now() + kLagRefresh;
    while (true) {
      if (joining_) {
        if (!wake_changed_.wait_for(lock, kGroupNudge, work)) {
          lock.unlock();
          nudge_group();
          lock.lock();
          continue;
        }
      } else {
        wake_changed_.wait_until(lock, next_lag, [&] { return work() || joining_; });
      }
      if (waker_stopping_) return;
      if (!joining_ && std::chrono::steady_clock::now() >= next_lag) {
        lock.unlock();
        lag_.refresh(consumer_, 2000);
        lock.lock();
        next_lag = std::chrono::steady_clock::now() + kLagRefresh;
        if (waker_stopping_) return;
      }
      if (wake_partitions_.empty()) continue;  // the member began joining
      rd_kafka_topic_partition_list_t* list =
          rd_kafka_topic_partition_list_new(static_cast<int>(wake_partitions_.size()));
      for (const auto& [topic, partition] : wake_partitions_)
        rd_kafka_topic_partition_list_add(list, topic.c_str(), partition)->offset = -1;  // latest
      lock.unlock();
      rd_kafka_offsets_for_times(consumer_, list, 1000);
      rd_kafka_topic_partition_list_destroy(list);
      lock.lock();
      wake_partitions_.clear();
    }
  });
}

void KafkaSource::set_joining(bool joining) {
  {
    std::lock_guard lock(wake_mutex_);
    joining_ = joining;
  }
  wake_changed_.notify_one();
}

// librdkafka 2.0.2 advances its group state machine (rd_kafka_cgrp_serve) only when
// its main thread wakes: on an operation for that thread, else once a second. And it
// joins at most once a second. A member whose first generation fails (measured: the
// first of 3 tasks forms generation 1 alone, its SyncGroup meets the others' arrival,
// REBALANCE_IN_PROGRESS) may rejoin 1 s after its last join, but the once-a-second
// wake-up came just before that (by ~10 ms), so it rejoined 2 s later and the whole
// group waited: the first record of a 2M-record run came ~2.1 s after start in most
// runs. Any request to the main thread wakes it: asking for the assignment is one, and
// cheap. So the join happens within kGroupNudge of being allowed.
void KafkaSource::nudge_group() {
  rd_kafka_topic_partition_list_t* current = nullptr;
  if (rd_kafka_assignment(consumer_, &current) == RD_KAFKA_RESP_ERR_NO_ERROR && current)
    rd_kafka_topic_partition_list_destroy(current);
}

void KafkaSource::stop_waker() {
  {
    std::lock_guard lock(wake_mutex_);
    waker_stopping_ = true;
  }
  wake_changed_.notify_one();
  if (waker_.joinable()) waker_.join();
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

bool KafkaSource::caught_up() {
  auto now = std::chrono::steady_clock::now();
  if (!assignment_seen_) {
    // No partitions: revoked in a rebalance that has not assigned again (the other
    // members may have ended and left). Nothing of this member's is in flight, so it is
    // done when the group is: every partition committed to its end. Otherwise it would
    // wait for an assignment that a group with nothing left to read may never make.
    if (!ever_assigned_ || now - last_end_check_ < std::chrono::milliseconds(250)) return false;
    last_end_check_ = now;
    return group_done();
  }
  for (const auto& [tp, state] : assigned_)
    if (!state.at_end) return false;
  // An end-of-partition event can be stale (the broker restarted, the producer went on):
  // confirm with the broker's high watermarks, at most every 250 ms.
  if (now - last_end_check_ < std::chrono::milliseconds(250)) return false;
  last_end_check_ = now;
  for (auto& [tp, state] : assigned_) {
    int64_t low = 0, high = 0;
    if (rd_kafka_query_watermark_offsets(consumer_, std::string(tp.first).c_str(), tp.second, &low,
                                         &high, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR)
      return false;
    if (high > low && state.read_to < high) {
      state.at_end = false;  // not at the end after all: wait for the records and a fresh end event
      return false;
    }
  }
  commit_ends();
  return group_done();
}

// At the end of a partition whose records are all acknowledged, the end offset is the
// position to commit, not the last record's offset + 1: the offsets after it may hold no
// record (a transaction's commit marker), and a consumer that read nothing (start =
// "latest") has no record to commit. Otherwise the group would never look finished.
void KafkaSource::commit_ends() {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(4);
  for (const auto& [tp, state] : assigned_) {
    if (!state.at_end || state.read_to < 0) continue;
    auto acked = acknowledged_.find(tp);
    std::int64_t acknowledged = acked == acknowledged_.end() ? -1 : acked->second;
    if (state.taken_to >= 0 && acknowledged < state.taken_to) continue;  // records in flight
    if (acknowledged >= state.read_to) continue;
    acknowledged_[tp] = state.read_to;
    rd_kafka_topic_partition_list_add(list, std::string(tp.first).c_str(), tp.second)->offset =
        state.read_to;
  }
  // With a transactional sink the commit is synchronous: it is done before the next
  // transaction commits offsets of its own, so it cannot land after one and undo it.
  const int async = sink_commits() ? 0 : 1;
  if (list->cnt > 0 && rd_kafka_commit(consumer_, list, async) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    commits_->add();
    if (!async) mark_sent(list);
  }
  rd_kafka_topic_partition_list_destroy(list);
}

// True when the group has committed every partition of the subscribed topics up to its
// high watermark. A member must not end on its own assignment alone: a partition being
// moved between members (a rebalance) belongs to nobody for a moment, and
// would be left unread if every member ended then.
bool KafkaSource::group_done() {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(8);
  bool done = true;
  for (const auto& t : topics_) {
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(consumer_, t.c_str(), nullptr);
    rd_kafka_resp_err_t rc = rd_kafka_metadata(consumer_, 0, rkt, &md, 2000);
    rd_kafka_topic_destroy(rkt);
    if (!rc && md && md->topic_cnt == 1 &&
        md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      rd_kafka_metadata_destroy(md);
      rd_kafka_topic_partition_list_destroy(list);
      check_topics_exist(true);  // throws, naming the topic and the closest existing names
    }
    if (rc || !md || md->topic_cnt != 1 || md->topics[0].err) done = false;
    else
      for (int p = 0; p < md->topics[0].partition_cnt; ++p)
        rd_kafka_topic_partition_list_add(list, t.c_str(), md->topics[0].partitions[p].id);
    if (md) rd_kafka_metadata_destroy(md);
  }
  if (done) done = rd_kafka_committed(consumer_, list, 3000) == RD_KAFKA_RESP_ERR_NO_ERROR;
  // An asynchronous commit can fail unseen (e.g. during a rebalance): send again what
  // this member acknowledged but the group does not have yet.
  rd_kafka_topic_partition_list_t* again = rd_kafka_topic_partition_list_new(4);
  for (int i = 0; done && i < list->cnt; ++i) {
    const rd_kafka_topic_partition_t& p = list->elems[i];
    auto mine = acknowledged_.find({intern(p.topic), p.partition});
    if (mine != acknowledged_.end() && p.offset < mine->second && assigned_.count(mine->first))
      rd_kafka_topic_partition_list_add(again, p.topic, p.partition)->offset = mine->second;
  }
  // Synchronous with a transactional sink, as in commit_ends: done before a transaction
  // commits offsets of its own, it cannot land after one and take the group's offset back.
  const int async = sink_commits() ? 0 : 1;
  if (again->cnt > 0 && rd_kafka_commit(consumer_, again, async) == RD_KAFKA_RESP_ERR_NO_ERROR &&
      !async)
    mark_sent(again);
  rd_kafka_topic_partition_list_destroy(again);
  for (int i = 0; done && i < list->cnt; ++i) {
    const rd_kafka_topic_partition_t& p = list->elems[i];
    int64_t low = 0, high = 0;
    if (p.err || rd_kafka_query_watermark_offsets(consumer_, p.topic, p.partition, &low, &high,
                                                  2000) != RD_KAFKA_RESP_ERR_NO_ERROR)
      done = false;
    else if (high > low && p.offset < high)
      done = false;
  }
  rd_kafka_topic_partition_list_destroy(list);
  return done;
}

void KafkaSource::commit(const std::vector<Position>& positions) {
  rd_kafka_topic_partition_list_t* list = accept(positions);
  if (list->cnt > 0 && !sink_commits()) {
    // Asynchronous: on_commit records what the coordinator confirmed.
    rd_kafka_resp_err_t rc = rd_kafka_commit(consumer_, list, 1);
    if (rc) context_.warn("offset commit: " + error_text(rc));
    else commits_->add();
  }
  rd_kafka_topic_partition_list_destroy(list);
}

// Records acknowledged positions of assigned partitions; returns those that moved (the
// caller destroys the list). With a transactional sink they are committed already.
rd_kafka_topic_partition_list_t* KafkaSource::accept(const std::vector<Position>& positions) {
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(positions.size()));
  for (const auto& p : positions) {
    std::string_view topic = p.topic;  // points into interned_: it came from take()
    // A partition revoked since these records were read belongs to another member now.
    auto state = assigned_.find({topic, p.partition});
    if (state == assigned_.end()) continue;
    // Or it came back: the batch was still in flight when the host's wait at the revoke
    // ended (Context::take_acknowledged), and the group's offset may have moved past it
    // since. Committing it would move the offset back (the records after it read again).
    if (state->second.assigned_from < 0 || p.next_offset < state->second.assigned_from) continue;
    auto [it, fresh] = acknowledged_.try_emplace({topic, p.partition}, p.next_offset);
    if (!fresh && it->second >= p.next_offset) continue;  // already there (an end commit)
    it->second = p.next_offset;
    rd_kafka_topic_partition_list_add(list, std::string(topic).c_str(), p.partition)->offset =
        p.next_offset;
  }
  if (list->cnt > 0 && sink_commits()) mark_sent(list);
  return list;
}

void KafkaSource::on_commit(rd_kafka_t*, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t* offsets, void* opaque) {
  auto* self = static_cast<KafkaSource*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__NO_OFFSET || !offsets) return;
  for (int i = 0; i < offsets->cnt; ++i) {
    const rd_kafka_topic_partition_t& p = offsets->elems[i];
    if (err || p.err) {
      // Not recorded as sent: revoke and close send it again.
      self->commit_failures_->add();
      if (self->commit_failures_->value() <= 10)
        self->context_.warn("offset commit of " + std::string(p.topic) + "/" +
                            std::to_string(p.partition) + " failed: " +
                            error_text(err ? err : p.err) + " (sent again on revoke or close)");
      continue;
    }
    auto& sent = self->sent_[{self->intern(p.topic), p.partition}];
    sent = std::max(sent, static_cast<std::int64_t>(p.offset));
  }
}

void KafkaSource::mark_sent(const rd_kafka_topic_partition_list_t* committed) {
  for (int i = 0; i < committed->cnt; ++i)
    sent_[{intern(committed->elems[i].topic), committed->elems[i].partition}] =
        committed->elems[i].offset;
}

void KafkaSource::commit_sync(rd_kafka_topic_partition_list_t* only) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(8);
  for (const auto& [tp, offset] : acknowledged_) {
    bool wanted = only == nullptr;
    for (int i = 0; only && i < only->cnt; ++i)
      wanted = wanted || (tp.first == only->elems[i].topic && tp.second == only->elems[i].partition);
    auto sent = sent_.find(tp);
    if (sent != sent_.end() && sent->second == offset) wanted = false;  // already committed
    if (wanted)
      rd_kafka_topic_partition_list_add(list, std::string(tp.first).c_str(), tp.second)->offset = offset;
  }
  if (list->cnt > 0) {
    // Another member leaving makes commits fail while the group rebalances: retry a bit.
    constexpr int kAttempts = 10;
    for (int attempt = 1; attempt <= kAttempts; ++attempt) {
      rd_kafka_resp_err_t rc = rd_kafka_commit(consumer_, list, 0);
      if (rc == RD_KAFKA_RESP_ERR_NO_ERROR) {
        mark_sent(list);
        break;
      }
      if (rc == RD_KAFKA_RESP_ERR__NO_OFFSET) break;
      if (rc != RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS || attempt == kAttempts) {
        context_.warn("offset commit: " + error_text(rc) +
                      " (the partitions' next reader starts at the group's last commit: the records "
                      "after it come again, unless the sink stores its positions; none is lost)");
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
}

void KafkaSource::seek(const std::vector<Position>& requested) {
  std::vector<Position> positions;
  positions.reserve(requested.size());
  for (Position p : requested) {
    // A partition revoked meanwhile is read again by its new owner, from the group's offset.
    auto it = assigned_.find({p.topic, p.partition});
    if (it == assigned_.end()) continue;
    // Or it came back, and the position is of a batch read before it was revoked (still
    // in flight when a sink asked to read again): the group's offset may have moved past
    // it since, by another member's commits. Seeking there would write those records
    // again and move the offset back. This assignment read nothing yet: it reads from the
    // group's offset anyway. Else from where this assignment began, unless the position
    // is the sink's stored one (its store lost writes: read again from there). A
    // transactional sink's positions are the group's offsets: this assignment began at
    // the first record after the one it was given, so nothing lies between.
    const std::int64_t assigned_from = it->second.assigned_from;
    if (assigned_from < 0) continue;
    if (p.next_offset < assigned_from &&
        (sink_commits() || context_.resume_position(p.topic, p.partition) != p.next_offset))
      p.next_offset = assigned_from;
    positions.push_back(p);
  }
  if (positions.empty()) return;
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(positions.size()));
  for (const auto& p : positions)
    rd_kafka_topic_partition_list_add(list, std::string(p.topic).c_str(), p.partition)->offset = p.next_offset;
  rd_kafka_error_t* error = rd_kafka_seek_partitions(consumer_, list, 10000);
  std::string failed;
  if (error) {
    failed = rd_kafka_error_string(error);
    rd_kafka_error_destroy(error);
  }
  for (int i = 0; failed.empty() && i < list->cnt; ++i)
    if (list->elems[i].err)
      failed = std::string(list->elems[i].topic) + "/" + std::to_string(list->elems[i].partition) +
               ": " + error_text(list->elems[i].err);
  rd_kafka_topic_partition_list_destroy(list);
  if (!failed.empty()) throw RetriableError("cannot seek the consumer: " + failed);
  for (const auto& p : positions) {
    auto it = assigned_.find({p.topic, p.partition});
    if (it == assigned_.end()) continue;
    Gauge* lag = it->second.lag;
    const std::int64_t assigned_from = it->second.assigned_from;
    it->second = PartitionState{};
    it->second.lag = lag;
    it->second.read_to = p.next_offset;
    it->second.span_from = p.next_offset;
    // The batches read before the seek are of this assignment: their positions are at or
    // past where it began; a late one of an earlier assignment still is not.
    it->second.assigned_from = assigned_from >= 0 ? std::min(assigned_from, p.next_offset) : p.next_offset;
    auto acked = acknowledged_.find(it->first);
    if (acked != acknowledged_.end()) acked->second = std::min(acked->second, p.next_offset);
  }
}

void KafkaSource::pause_partitions(rd_kafka_topic_partition_list_t* partitions, bool pause) {
  rd_kafka_resp_err_t rc = pause ? rd_kafka_pause_partitions(consumer_, partitions)
                                 : rd_kafka_resume_partitions(consumer_, partitions);
  if (rc) context_.warn(std::string(pause ? "pause" : "resume") + ": " + error_text(rc));
}

// While paused the host keeps polling: the consumer answers its group (heartbeats,
// rebalances, max.poll.interval.ms) and fetches nothing.
bool KafkaSource::set_paused(bool paused) {
  paused_ = paused;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(8);
  for (const auto& [tp, state] : assigned_)
    rd_kafka_topic_partition_list_add(list, std::string(tp.first).c_str(), tp.second);
  if (list->cnt > 0) pause_partitions(list, paused);
  rd_kafka_topic_partition_list_destroy(list);
  return true;
}

namespace {
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}
}  // namespace

// A consumer of a topic that does not exist otherwise waits in silence (brokers here do
// not create topics on demand). `fail`: a bounded run, which would never end.
void KafkaSource::check_topics_exist(bool fail) {
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(consumer_, 1, nullptr, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR || !md) {
    context_.warn("cannot list the topics of " + context_.kafka_bootstrap() +
                  " yet: not checking that the subscribed topics exist");
    return;
  }
  std::vector<std::string> existing;
  for (int i = 0; i < md->topic_cnt; ++i)
    if (!md->topics[i].err) existing.emplace_back(md->topics[i].topic);
  rd_kafka_metadata_destroy(md);
  std::string problems;
  for (const auto& topic : topics_) {
    if (std::find(existing.begin(), existing.end(), topic) != existing.end()) continue;
    std::string closest;
    std::size_t best = std::max<std::size_t>(3, topic.size() / 3) + 1;
    for (const auto& e : existing)
      if (e.rfind("__", 0) != 0 && edit_distance(topic, e) < best) {
        best = edit_distance(topic, e);
        closest = e;
      }
    problems += (problems.empty() ? "" : "; ") + std::string("topic '") + topic +
                "' does not exist" + (closest.empty() ? "" : " (did you mean '" + closest + "'?)");
  }
  if (problems.empty()) return;
  problems += ": create it, list it under [kafka.topics] so pipehost creates it, or fix the name";
  if (fail) throw FatalError(problems);
  context_.warn(problems + "; waiting for it to appear");
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
