// A task's source positions: where a run resumes, what is committed once the sink
// acknowledged, and reading again after a rewind.
#include "runtime/task.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

#include "log.hpp"

namespace pipehost::host {
namespace {
// How long a source about to lose partitions waits for the batches still in flight (as
// Kafka Connect's offset.flush.timeout.ms): the group's rebalance waits meanwhile.
constexpr Millis kRevokeWait{5000};

// "t/0@12, t/1@7": where each partition is (read again from, committed up to).
std::string positions_text(const std::vector<Position>& positions) {
  std::string out;
  for (const Position& p : positions)
    out += (out.empty() ? "" : ", ") + std::string(p.topic) + "/" + std::to_string(p.partition) + "@" +
           std::to_string(p.next_offset);
  return out;
}
}  // namespace

std::optional<std::int64_t> Task::resume_from_sink(std::string_view topic, std::int32_t partition) {
  std::optional<std::int64_t> out;
  const auto before = services_.kafka_embedded
                          ? services_.resumed_before(state_.name, config_.sink.plugin, config_.sink.options,
                                                     topic, partition)
                          : Services::Resumed::this_sink;
  const std::string which = std::string(topic) + "/" + std::to_string(partition);
  Status s;
  for (int attempt = 0; attempt < 20 && !stopping(); ++attempt) {
    s = sink_->stored_position(topic, partition, out);
    // An earlier run's (see Services::resumed_before): dropped.
    const bool earlier = s.is_ok() && out &&
                         (before == Services::Resumed::never ||
                          (before == Services::Resumed::other_sink &&
                           services_.last_acknowledged(state_.name, topic, partition) != out));
    if (earlier) s = forget_earlier_run(topic, partition, *out);
    if (s.is_ok()) {
      if (services_.kafka_embedded) {
        services_.note_resumed(state_.name, config_.sink.plugin, config_.sink.options, topic, partition);
        if (out && !earlier) services_.note_acknowledged(state_.name, topic, partition, *out);
      }
      return earlier ? std::optional<std::int64_t>{} : out;
    }
    log(LogLevel::warn, "sink cannot tell the stored position of " + which + " yet: " + s.message());
    if (s.code() != Code::retriable || !back_off(attempt)) break;
  }
  // Reading from the group's offset instead could skip what the sink lost, or apply what
  // it holds twice: nothing the source reads now is delivered, and the pipeline stops (its
  // restart policy asks again).
  resume_failed_ = true;
  if (!stopping())
    fail("sink", Status::fatal("it cannot tell the stored position of " + which +
                               ", where that partition must resume: " + s.message()));
  return std::nullopt;
}

// A position the sink stored for the embedded broker in an earlier process: that log is
// gone, and this run's records would sit below it, taken for applied. Dropped, so that
// the partition is read from its start; the data the sink holds stays.
Status Task::forget_earlier_run(std::string_view topic, std::int32_t partition, std::int64_t stored) {
  Status s = sink_->forget_position(topic, partition);
  if (s.is_ok())
    log(LogLevel::warn, "the sink held position " + std::to_string(stored) + " of " + std::string(topic) +
                            "/" + std::to_string(partition) +
                            " from an earlier run; the embedded broker starts empty every run, so "
                            "it was dropped and the partition is read from its start (the sink's "
                            "data stays; use a real broker for positions that last between runs)");
  return s;
}

// `attempt` again while it fails with a retriable status (a broker or database restarting
// mid-rewind), backing off, until it succeeds, fails otherwise or the pipeline stops.
Status Task::retried(const std::function<Status()>& attempt, const std::string& what) {
  for (int n = 0;; ++n) {
    Status s = attempt();
    if (s.is_ok() || s.code() != Code::retriable) return s;
    log(LogLevel::warn, what + ": " + s.message() + " (retrying)");
    if (!back_off(n)) return s;
  }
}

// The sink's store lost writes: read every partition of the batch again from where the
// sink's stored position says, instead of writing past the records it lost.
bool Task::rewind_source(const Batch& batch, const Status& why) {
  std::vector<Position> positions;
  for (std::size_t i = 0; i < batch.spans.size(); ++i) {
    const Span& span = batch.spans[i];
    std::optional<std::int64_t> stored;
    Status s = retried([&] { return sink_->stored_position(span.topic, span.partition, stored); },
                       "sink: cannot tell the stored position of " + std::string(span.topic) + "/" +
                           std::to_string(span.partition) + " to read again from");
    if (!s.is_ok()) {
      if (!stopping()) fail("sink", s);  // a stop while retrying is a clean stop, not a failure
      return false;
    }
    // Nothing stored yet: from where this batch began (it is the partition's first read).
    std::int64_t offset = stored                     ? *stored
                          : span.from >= 0           ? span.from
                          : i < first_polled_.size() ? first_polled_[i]
                                                     : -1;
    if (offset < 0)
      return fail("sink", Status::fatal(why.message() + "; the sink holds no position for " +
                                        std::string(span.topic) + "/" +
                                        std::to_string(span.partition) + " to read again from")),
             false;
    positions.push_back({span.topic, span.partition, offset});
  }
  const std::string where = positions_text(positions);
  Status s = retried([&] { return source_->seek(positions); }, "source: cannot read again from " + where);
  if (!s.is_ok()) return fail("source", s), false;
  state_.rewinds += 1;
  drain_since_.reset();  // reading again: a later end waits afresh
  log(LogLevel::warn, why.message() + "; reading again from " + where);
  return true;
}

bool Task::rewind_in_flight() {
  const Status why = *std::exchange(rewind_pending_, std::nullopt);
  // The batches written after the refused one are read and written again too (at least
  // once): the source cannot read again from the middle of what it read.
  // As in the loop, a sink that settles nothing for stall_timeout_ms stops the pipeline.
  std::uint64_t in_flight = tracker_.in_flight_records();
  auto progress = std::chrono::steady_clock::now();
  while (!tracker_.wait_all(kPollWait)) {
    if (stopping()) return false;
    const auto now = std::chrono::steady_clock::now();
    if (const std::uint64_t left = tracker_.in_flight_records(); left < in_flight) {
      in_flight = left;
      progress = now;
    } else if (config_.stall_timeout_ms > 0 && now - progress > Millis(config_.stall_timeout_ms)) {
      state_.stalls += 1;
      stalled_ = true;
      fail("sink", Status::fatal("stalled: nothing settled for " + std::to_string(config_.stall_timeout_ms) +
                                 " ms with " + std::to_string(left) + " records in flight, waiting to read again (" +
                                 why.message() + ")"));
      return false;
    }
  }
  // What completed before the batch was drained when its status was found.
  DeliveryTracker::Rewound rewound = tracker_.rewind();
  rewind_pending_.reset();  // a later batch may have asked too: one read again serves both
  rewound_letters_.rewound_in_flight();  // their dead letters are not written again
  if (rewound.error) return fail("sink", *rewound.error), false;
  if (rewound.positions.empty())
    return fail("sink", Status::fatal(why.message() + "; the batch has no source position to read again from")),
           false;
  const std::string where = positions_text(rewound.positions);
  Status s = retried([&] { return source_->seek(rewound.positions); }, "source: cannot read again from " + where);
  if (!s.is_ok() && stopping()) return false;  // a stop while retrying is a clean stop
  if (!s.is_ok())
    return fail("source", Status::fatal(why.message() + "; reading again from " + where + " failed: " + s.message())),
           false;
  state_.rewinds += 1;
  drain_since_.reset();  // reading again: a later end waits afresh
  log(LogLevel::warn, why.message() + "; reading again from " + where);
  return true;
}


// Called by the source, on this task's thread, from within poll (a rebalance). The
// batches still in flight (an asynchronous sink's: the kafka sink's delivery reports,
// which come on its own thread) are waited for first, kRevokeWait at most: what this
// member read before it loses the partitions is then committed, and the next owner does
// not read it again (3,584 duplicates in a 2 M-record route run without the wait, when
// the group's first rebalance moved the partitions). Past the wait, at least once.
std::vector<Position> Task::take_acknowledged() {
  const auto started = std::chrono::steady_clock::now();
  bool confirmed = tracker_.wait_all(Millis(0));
  while (!confirmed && !stopping() && std::chrono::steady_clock::now() < started + kRevokeWait)
    confirmed = tracker_.wait_all(kPollWait);
  const auto waited = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started);
  if (waited >= Millis(100))
    log(confirmed ? LogLevel::info : LogLevel::warn,
        "source giving up partitions: waited " + std::to_string(waited.count()) + " ms for the sink" +
            (confirmed ? " to confirm what was in flight"
                       : "; " + std::to_string(tracker_.in_flight_records()) +
                             " records still in flight; those of the partitions given up will be "
                             "read again by their next owner"));
  collect_acknowledged();
  rewound_letters_.forget();  // else kept for partitions never read here again
  if (services_.kafka_embedded)  // committed by the source now (see Services::resumed_before)
    for (const auto& p : pending_commit_) services_.note_acknowledged(state_.name, p.topic, p.partition, p.next_offset);
  return std::exchange(pending_commit_, {});
}

void Task::commit(bool force) {
  collect_acknowledged();
  auto now = std::chrono::steady_clock::now();
  if (pending_commit_.empty()) return;
  // At most every commit_interval_ms while records flow; at once when the source found
  // nothing and nothing is in flight any more (an idle pipeline, the end of a bounded
  // read), so the group's offsets, its lag and the end of a stop_at_end run do not wait
  // for the interval. A synchronous sink has nothing in flight after every batch: a
  // commit per batch would be a request to the group coordinator per batch (measured at
  // 400k records/s live: ~400 commits/s that the broker serves instead of fetches).
  if (!force && now - last_commit_ < Millis(config_.commit_interval_ms) &&
      (tracker_.in_flight_records() > 0 || !last_poll_empty_))
    return;
  Status s = source_->commit(pending_commit_);
  if (!s.is_ok() && s.code() != Code::retriable) {
    fail("source", s);  // a source that says it cannot go on is not asked again for ever
  } else if (!s.is_ok()) {
    log(LogLevel::warn, "source commit failed (will retry): " + s.message());
  } else {
    if (log_enabled(LogLevel::debug)) {
      log(LogLevel::debug, "acknowledged up to " + positions_text(pending_commit_) +
                               " (handed to the source to commit)");
    }
    {
      std::lock_guard lock(state_.positions_mutex);
      for (const auto& p : pending_commit_)
        state_.acknowledged_positions[{std::string(p.topic), p.partition}] = p.next_offset;
      if (services_.kafka_embedded)
        for (const auto& p : pending_commit_) services_.note_acknowledged(state_.name, p.topic, p.partition, p.next_offset);
    }
    pending_commit_.clear();
    state_.commits += 1;
  }
  last_commit_ = now;
}

void Task::collect_acknowledged() {
  DeliveryTracker::Drained drained = tracker_.drain();
  state_.records_acked += drained.records;
  rewound_letters_.acknowledged(drained.positions);
  if (drained.records > 0) acknowledged_since_check_ = true;
  if (!drained.positions.empty()) {
    PartitionSlots slots;  // pending_commit_'s partitions, in its order
    for (const auto& p : pending_commit_) slots.slot(p.topic, p.partition);
    for (const auto& p : drained.positions) {
      auto [at, added] = slots.slot(p.topic, p.partition);
      if (added) pending_commit_.push_back(p);
      else pending_commit_[at].next_offset = p.next_offset;
    }
  }
  if (drained.error) {
    const Status& e = *drained.error;
    if (e.code() == Code::rewind)
      rewind_pending_ = e;  // by the loop; a stop leaves it to the next run (nothing past it is committed)
    else if (e.code() == Code::retriable)
      fail("sink", Status::fatal("the sink reported a retriable error through done (" + e.message() +
                                 "); a sink retries a batch by throwing RetriableError from "
                                 "write, done takes ok, cancelled or an error that stops the "
                                 "pipeline"));
    else if (e.code() != Code::cancelled)
      fail("sink", e);
  }
}

bool Task::check_acknowledgements() {
  if (config_.stall_timeout_ms <= 0) return true;
  auto now = std::chrono::steady_clock::now();
  if (tracker_.in_flight_records() == 0 || acknowledged_since_check_) {
    last_progress_ = now;
    acknowledged_since_check_ = false;
    return true;
  }
  auto waited = std::chrono::duration_cast<Millis>(now - last_progress_).count();
  if (waited < config_.stall_timeout_ms) return true;
  state_.stalls += 1;
  stalled_ = true;  // no use waiting for acknowledgements when draining
  fail("sink", Status::fatal("stalled: nothing acknowledged for " + std::to_string(waited) + " ms with " +
                             std::to_string(tracker_.in_flight_records()) +
                             " records in flight (stall_timeout_ms)"));
  return false;
}

}  // namespace pipehost::host
