#include "runtime/task.hpp"

#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>
#include <utility>

#include "log.hpp"

namespace pipehost::host {
namespace {
constexpr Millis kPollWait{100};
constexpr Millis kDrainTimeout{30000};
// How long a source about to lose partitions waits for the batches still in flight (as
// Kafka Connect's offset.flush.timeout.ms): the group's rebalance waits meanwhile.
constexpr Millis kRevokeWait{5000};

// CPU time of the calling thread: what a stage's call cost, whatever else runs.
std::uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// One call into a stage: adds its thread CPU time to the stage's total, and says while
// it lasts which stage this task is in (the supervisor reports a call that never returns).
class StageCall {
 public:
  StageCall(PipelineState& state, int task, std::size_t stage)
      : stats_(state.stages[stage]), busy_since_(state.busy_since_ms[static_cast<std::size_t>(task)]),
        start_(thread_cpu_ns()) {
    state.busy_stage[static_cast<std::size_t>(task)] = static_cast<int>(stage);
    busy_since_ = steady_ms();
  }
  ~StageCall() {
    busy_since_ = 0;
    stats_.cpu_ns += thread_cpu_ns() - start_;
  }
  StageCall(const StageCall&) = delete;
  StageCall& operator=(const StageCall&) = delete;

 private:
  StageStats& stats_;
  std::atomic<std::int64_t>& busy_since_;
  std::uint64_t start_;
};

std::string origin_text(const Record& r) {
  if (r.origin.partition < 0) return "a record";
  return "record " + std::string(r.origin.topic) + "/" + std::to_string(r.origin.partition) + "@" +
         std::to_string(r.origin.offset);
}

// "t/0@12, t/1@7": where each partition is (read again from, committed up to).
std::string positions_text(const std::vector<Position>& positions) {
  std::string out;
  for (const Position& p : positions)
    out += (out.empty() ? "" : ", ") + std::string(p.topic) + "/" + std::to_string(p.partition) + "@" +
           std::to_string(p.next_offset);
  return out;
}
}  // namespace

Task::Task(const PipelineConfig& config, Services& services, PipelineState& state, int index)
    : config_(config), services_(services), state_(state), index_(index) {}

Task::~Task() {
  // Plugin objects go before their contexts.
  dead_letter_.reset();
  source_.reset();
  transforms_.clear();
  sink_.reset();
}

void Task::log(LogLevel level, const std::string& message) {
  std::string prefix = state_.name + (config_.tasks > 1 ? "#" + std::to_string(index_) : "");
  log_line(level, prefix, message);
}

void Task::fail(const std::string& stage, const Status& status) {
  std::string message = "pipeline '" + state_.name + "' stopped: " + stage + " (" +
                        (stage == "source" ? config_.source.plugin
                         : stage == "sink" ? config_.sink.plugin
                                           : std::string("transform")) +
                        ") failed: " + status.message();
  state_.fail(message);
}

bool Task::back_off(int attempt) {
  auto wait = Millis(std::min<long>(5000, 100L << std::min(attempt, 6)));
  auto until = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < until) {
    if (stopping()) return false;
    std::this_thread::sleep_for(Millis(20));
  }
  return true;
}

bool Task::build() {
  int n = config_.tasks;
  auto make_context = [&](const std::string& stage, StageContext::ResumeLookup resume = {},
                          StageContext::TakeAcknowledged acknowledged = {}) {
    return std::make_unique<StageContext>(services_, state_, stage, index_, n, std::move(resume),
                                          std::move(acknowledged));
  };
  std::string error;
  sink_context_ = make_context("sink");
  const std::size_t sink_stage = state_.stages.size() - 1;
  {
    StageCall call(state_, index_, sink_stage);
    sink_ = config_.sink.component->make_sink(config_.sink.options, *sink_context_, error);
  }
  if (!sink_) return fail("sink", Status::fatal(error)), false;
  for (std::size_t i = 0; i < config_.transforms.size(); ++i) {
    const auto& t = config_.transforms[i];
    transform_contexts_.push_back(make_context(t.label));
    std::unique_ptr<TransformStage> stage;
    {
      StageCall call(state_, index_, i + 1);
      stage = t.component->make_transform(t.options, *transform_contexts_.back(), error);
    }
    if (!stage) return fail(t.label, Status::fatal(error)), false;
    transforms_.push_back(std::move(stage));
  }
  auto resume = [this](std::string_view topic, std::int32_t partition) -> std::optional<std::int64_t> {
    try {
      return resume_from_sink(topic, partition);
    } catch (const std::exception& e) {  // bad_alloc and the like: not the group's offset either
      resume_failed_ = true;
      if (!stopping()) fail("sink", Status::fatal("asking the stored position of " + std::string(topic) + "/" +
                                                  std::to_string(partition) + ": " + e.what()));
      return std::nullopt;
    }
  };
  source_context_ = make_context("source", resume, [this] { return take_acknowledged(); });
  {
    StageCall call(state_, index_, 0);
    source_ = config_.source.component->make_source(config_.source.options, *source_context_, error);
  }
  if (!source_) return fail("source", Status::fatal(error)), false;
  if (config_.on_error == ErrorPolicy::dead_letter) {
    dead_letter_context_ = make_context("dead_letter");
    dead_letter_ = std::make_unique<DeadLetterWriter>(*config_.dead_letter_sink, *dead_letter_context_,
                                                      config_.dead_letter_topic, state_.name);
  }
  return true;
}

// A stage's start, again with backoff while it fails retriably (a service it needs is
// not there yet, as a registry that avro_encode registers with at start).
bool Task::start_stage(const std::string& label, std::size_t stage, const std::function<Status()>& start) {
  for (int attempt = 0;; ++attempt) {
    Status s;
    {
      StageCall call(state_, index_, stage);  // a start that never returns is a stall too
      s = start();
    }
    if (s.is_ok()) return true;
    if (s.code() != Code::retriable) return fail(label, s), false;
    log(LogLevel::warn, label + " not ready, retrying: " + s.message());
    if (!back_off(attempt)) return false;
  }
}

bool Task::start_stages() {
  // Sink first: the source may ask it where to resume as soon as it starts.
  if (!start_stage("sink", state_.stages.size() - 1, [&] { return sink_->start(); })) return false;
  sink_started_ = true;
  for (std::size_t i = 0; i < transforms_.size(); ++i) {
    if (!start_stage(config_.transforms[i].label, i + 1, [&] { return transforms_[i]->start(); })) return false;
    transforms_started_ = i + 1;
  }
  // Every task's source subscribes at about the same moment: with a consumer group, the
  // members then join the group's first rebalance together (measured: one consumer
  // joining alone took all partitions and a second rebalance ~3 s later spread them).
  {
    std::unique_lock lock(state_.start_mutex);
    ++state_.tasks_before_source;
    state_.start_changed.notify_all();
    // Woken when the last task arrives or the pipeline fails; SIGINT is seen within kPollWait.
    while (state_.tasks_before_source < config_.tasks) {
      if (stopping()) return false;  // another task failed to start: this one stops too
      state_.start_changed.wait_for(lock, kPollWait);
    }
  }
  source_started_ = start_stage("source", 0, [&] { return source_->start(); });
  return source_started_;
}

// "top -H", perf and /proc show "<pipeline>/<task>" (the kernel keeps 15 bytes).
static void name_this_thread(const std::string& pipeline, int index) {
  std::string name = pipeline.substr(0, 11) + "/" + std::to_string(index);
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

void Task::run() noexcept {
  name_this_thread(state_.name, index_);
  try {
    if (build() && start_stages()) {
      state_.tasks_started += 1;
      loop();
      state_.tasks_started -= 1;
    }
    drain_and_stop();
    state_.in_flight_records[static_cast<std::size_t>(index_)] = 0;
    state_.in_flight_bytes[static_cast<std::size_t>(index_)] = 0;
  } catch (const std::exception& e) {
    state_.fail("pipeline '" + state_.name + "' stopped: internal error: " + e.what());
  }
}

bool Task::apply_pause() {
  bool paused = state_.paused;
  if (paused != paused_) {
    bool keep_polling = false;
    Status s = source_->set_paused(paused, keep_polling);
    if (!s.is_ok()) return fail("source", s), false;
    paused_ = paused;
    poll_while_paused_ = keep_polling;
  }
  return true;
}

void Task::loop() {
  int poll_attempt = 0;
  // One batch, recycled after every poll: the records' storage (decoded values above all)
  // is reused by the next poll instead of freed and allocated again.
  Batch batch;
  batch.capacity = config_.batch_size;
  batch.records.reserve(config_.batch_size);  // no re-allocation (and moves) while filling
  struct Recycle {  // however the iteration ends
    Batch& batch;
    ~Recycle() { batch.recycle(); }
  };
  while (!stopping()) {
    if (state_.finish && !finish_sent_) {
      finish_sent_ = true;
      Status s = source_->finish_at_end();
      if (!s.is_ok()) return fail("source", s);
    }
    commit(false);
    if (!check_acknowledgements() || stopping()) return;  // a failed batch found: poll no more
    if (rewind_pending_ && !rewind_in_flight()) return;
    state_.in_flight_records[static_cast<std::size_t>(index_)] = tracker_.in_flight_records();
    state_.in_flight_bytes[static_cast<std::size_t>(index_)] = tracker_.in_flight_bytes();
    if (!apply_pause()) return;
    if (paused_ && !poll_while_paused_) {
      std::this_thread::sleep_for(kPollWait);
      continue;
    }
    if (!tracker_.wait_for_room(config_.max_in_flight_records, config_.max_in_flight_bytes, kPollWait))
      continue;
    Recycle recycle{batch};
    bool ended = false;
    StageStats& source_stats = state_.stages.front();
    Status s;
    {
      StageCall call(state_, index_, 0);
      s = source_->poll(batch, kPollWait, ended);
    }
    if (resume_failed_) return;  // the batch may start where the sink did not say
    source_stats.records_out += batch.records.size();
    last_poll_empty_ = batch.records.empty();
    if (state_.taps.active() && !batch.records.empty()) state_.taps.offer("source", index_, batch);
    const bool retry = !s.is_ok();
    if (retry) {
      if (s.code() != Code::retriable) return fail("source", s);
      source_stats.retries += 1;
      log(LogLevel::warn, "source: " + s.message() + " (retrying)");
      // What the source took before the error is delivered: it has read past it, and a
      // later batch's positions would be committed over it.
      if (batch.empty() && batch.spans.empty()) {
        if (!back_off(poll_attempt++)) return;
        continue;
      }
      ended = false;
    } else {
      poll_attempt = 0;
    }
    if (batch.spans.empty()) batch.spans = batch.spans_from_records();
    std::size_t records = batch.records.size();
    batch_rejected_ = 0;
    if (!batch.empty() || !batch.spans.empty()) deliver(batch);
    if (records > 0 && !check_error_rate(records)) return;
    if (retry && !back_off(poll_attempt++)) return;
    if (ended) {
      if (rewind_asked_at_end()) continue;
      source_ended_ = true;
      return;
    }
  }
}

// The source ended, but a batch in flight may still be refused (done says rewind) and
// have to be read again: waits for them (as long as draining would).
bool Task::rewind_asked_at_end() {
  if (!drain_since_) drain_since_ = std::chrono::steady_clock::now();
  while (!tracker_.wait_all(kPollWait))
    if (stopping() || std::chrono::steady_clock::now() > *drain_since_ + kDrainTimeout) return false;
  collect_acknowledged();
  return rewind_pending_.has_value();
}

void Task::deliver(Batch& batch) {
  first_polled_.clear();
  rewound_letters_.batch_started();
  for (const Span& span : batch.spans) {
    if (span.from >= 0) {
      first_polled_.push_back(-1);
      continue;
    }
    std::int64_t first = -1;  // records of a partition come in offset order
    for (const auto& r : batch.records)
      if (r.origin.partition == span.partition && r.origin.topic == span.topic) {
        first = r.origin.offset;
        break;
      }
    first_polled_.push_back(first);
  }
  std::uint64_t bytes = 0;
  std::vector<std::int64_t> timestamps;
  timestamps.reserve(batch.records.size());
  for (const auto& r : batch.records) {
    bytes += r.key.size() + r.payload.size();
    timestamps.push_back(r.timestamp_ms);
  }
  std::uint64_t records = batch.records.size();
  state_.records_read += records;
  std::vector<Position> starts;  // where the batch is read again if its sink's done says so
  for (std::size_t i = 0; i < batch.spans.size(); ++i) {
    const Span& span = batch.spans[i];
    const std::int64_t from = span.from >= 0 ? span.from : first_polled_[i];
    if (from >= 0) starts.push_back({span.topic, span.partition, from});
  }
  // Two parts: the sink's confirmation, and this task having dealt with rejections the
  // sink made while writing.
  std::uint64_t sequence = tracker_.begin(positions_of(batch), records, bytes, 2, std::move(timestamps),
                                          std::move(starts));
  // Shown now, not at the next poll: a sink that does not answer holds this task here.
  state_.in_flight_records[static_cast<std::size_t>(index_)] = tracker_.in_flight_records();
  state_.in_flight_bytes[static_cast<std::size_t>(index_)] = tracker_.in_flight_bytes();
  auto started = std::chrono::steady_clock::now();
  struct Timed {  // however deliver returns
    PipelineState& state;
    std::chrono::steady_clock::time_point started;
    ~Timed() {
      state.batch_duration.add(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    }
  } timed{state_, started};
  for (std::size_t i = 0; i < transforms_.size(); ++i)
    if (!run_transform(i, batch)) return tracker_.abandon(sequence);
  if (!prepare_sink(batch)) return tracker_.abandon(sequence);
  // Decoded values are not counted in flight: they live only while deliver runs (the
  // batch is recycled when it returns, and no sink keeps its records), so a task holds
  // one batch of them at most, whatever the sink has outstanding.
  switch (write_to_sink(batch, sequence)) {
    case Written::ok: break;
    case Written::failed: return tracker_.abandon(sequence);
    case Written::rewound:
      rewound_letters_.rewound();
      return tracker_.discard(sequence);
  }
  if (!handle_rejections(batch, "sink", state_.stages.back())) return tracker_.abandon(sequence);
  rewound_letters_.batch_written(batch.spans);
  tracker_.complete(sequence, Status::ok());
}

bool Task::run_transform(std::size_t index, Batch& batch) {
  const std::string& label = config_.transforms[index].label;
  StageStats& stats = state_.stages[index + 1];
  stats.records_in += batch.records.size();
  for (int attempt = 0;; ++attempt) {
    Status s;
    {
      StageCall call(state_, index_, index + 1);
      s = transforms_[index]->process(batch);
    }
    if (s.is_ok()) break;
    if (s.code() != Code::retriable) return fail(label, s), false;
    stats.retries += 1;
    log(LogLevel::warn, label + ": " + s.message() + " (retrying)");
    if (!back_off(attempt)) return false;
  }
  if (!handle_rejections(batch, label, stats)) return false;
  batch.compact();
  stats.records_out += batch.records.size();
  if (state_.taps.active()) state_.taps.offer(stats.label, index_, batch);
  return true;
}

// The sink rejects what it cannot take before it writes anything: those records are
// dead-lettered (or skipped) before any position past them is stored.
bool Task::prepare_sink(Batch& batch) {
  StageStats& stats = state_.stages.back();
  stats.records_in += batch.records.size();
  for (int attempt = 0;; ++attempt) {
    Status s;
    {
      StageCall call(state_, index_, state_.stages.size() - 1);
      s = sink_->prepare(batch);
    }
    if (s.is_ok()) break;
    if (s.code() != Code::retriable) return fail("sink", s), false;
    stats.retries += 1;
    log(LogLevel::warn, "sink: " + s.message() + " (retrying)");
    batch.rejections.clear();
    for (auto& r : batch.records) r.dropped = false;
    if (!back_off(attempt)) return false;
  }
  if (!handle_rejections(batch, "sink", stats)) return false;
  batch.compact();
  if (state_.taps.active()) state_.taps.offer("sink", index_, batch);
  return true;
}

Task::Written Task::write_to_sink(Batch& batch, std::uint64_t sequence) {
  for (int attempt = 0;; ++attempt) {
    DeliveryTracker* tracker = &tracker_;
    StageStats& stats = state_.stages.back();
    Status s;
    {
      StageCall call(state_, index_, state_.stages.size() - 1);
      auto called = std::make_shared<std::atomic<bool>>(false);
      s = sink_->write(batch, [tracker, sequence, called](Status status) {
        if (called->exchange(true)) return tracker->done_called_twice();
        tracker->complete(sequence, status);
      });
    }
    if (s.is_ok()) return Written::ok;
    if (s.code() == Code::retriable) stats.retries += 1;
    if (s.code() == Code::rewind) return rewind_source(batch, s) ? Written::rewound : Written::failed;
    if (s.code() != Code::retriable) return fail("sink", s), Written::failed;
    log(LogLevel::warn, "sink: " + s.message() + " (retrying the batch)");
    batch.compact();
    if (!back_off(attempt)) return Written::failed;
  }
}

// Where the source resumes a partition: the sink's stored position (none: the group's
// offset). A sink that cannot tell fails the pipeline (see resume_failed_).
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

bool Task::handle_rejections(Batch& batch, const std::string& stage, StageStats& stats) {
  if (batch.rejections.empty()) return true;
  // Records rejected again after their batch was read again (a sink found rows its store
  // refuses) were dead-lettered or skipped already: neither written nor counted twice.
  if (config_.on_error != ErrorPolicy::fail) {
    if (std::size_t again = rewound_letters_.remove_written(batch.rejections))
      log(LogLevel::info, stage + ": " + std::to_string(again) +
                              " record(s) rejected again after the batch was read again; " +
                              (config_.on_error == ErrorPolicy::dead_letter
                                   ? "already on the dead-letter topic, not written twice"
                                   : "skipped already, not counted twice"));
    if (batch.rejections.empty()) return true;
  }
  stats.records_rejected += batch.rejections.size();
  for (auto& r : batch.rejections) clip_reason(r.reason);
  last_rejection_ = stage + ": " + origin_text(batch.rejections.back().record) + ": " +
                    batch.rejections.back().reason;
  batch_rejected_ += batch.rejections.size();
  state_.records_rejected += batch.rejections.size();
  switch (config_.on_error) {
    case ErrorPolicy::fail: {
      const Rejection& r = batch.rejections.front();
      fail(stage, Status::invalid(origin_text(r.record) + " rejected: " + r.reason +
                                  " (on_error = \"fail\"; set on_error = \"skip\" or "
                                  "\"dead_letter\" to keep going)"));
      return false;
    }
    case ErrorPolicy::skip:
      log_rejections(batch.rejections, stage, "skipped");
      rewound_letters_.written_to_topic(batch.rejections);  // handled: see above
      break;
    case ErrorPolicy::dead_letter:
      for (int attempt = 0;; ++attempt) {
        Status s = dead_letter_->write(batch.rejections, stage, [this] { return stopping(); });
        if (s.is_ok()) break;
        if (s.code() == Code::cancelled) return false;  // stopping: nothing acknowledged
        if (s.code() != Code::retriable) return fail(stage, s), false;
        log(LogLevel::warn, s.message() + " (retrying)");
        if (!back_off(attempt)) return false;
      }
      state_.records_dead_lettered += batch.rejections.size();
      log_rejections(batch.rejections, stage, "dead-lettered (to " + config_.dead_letter_topic + ")");
      rewound_letters_.written_to_topic(batch.rejections);
      break;
  }
  batch.rejections.clear();
  return true;
}

// The first ten, then every thousandth: enough to see, not a flood; and it says so.
void Task::log_rejections(const std::vector<Rejection>& rejections, const std::string& stage,
                          const std::string& done_with) {
  for (const auto& r : rejections) {
    ++rejections_logged_;
    if (rejections_logged_ <= 10 || rejections_logged_ % 1000 == 0)
      log(LogLevel::warn, stage + ": " + done_with + " " + origin_text(r.record) + ": " + r.reason +
                              (rejections_logged_ == 10 ? " (further rejected records: every thousandth "
                                                          "is logged, all are counted in "
                                                          "pipehost_records_rejected_total)"
                                                        : ""));
  }
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

bool Task::check_error_rate(std::size_t records) {
  if (config_.max_error_rate >= 1.0) return true;
  error_window_.emplace_back(records, batch_rejected_);
  window_records_ += records;
  window_rejected_ += batch_rejected_;
  while (window_records_ - error_window_.front().first >= config_.error_rate_window) {
    window_records_ -= error_window_.front().first;
    window_rejected_ -= error_window_.front().second;
    error_window_.pop_front();
  }
  if (window_records_ < config_.error_rate_window) return true;
  double rate = static_cast<double>(window_rejected_) / static_cast<double>(window_records_);
  if (rate <= config_.max_error_rate) return true;
  char share[32], limit[32];
  std::snprintf(share, sizeof share, "%.0f%%", rate * 100);
  std::snprintf(limit, sizeof limit, "%g", config_.max_error_rate);
  state_.fail("pipeline '" + state_.name + "' stopped by its breaker: " + std::to_string(window_rejected_) +
              " of the last " + std::to_string(window_records_) + " records rejected (" + share +
              "; whole batches, error_rate_window = " + std::to_string(config_.error_rate_window) +
              " at least), over max_error_rate = " + limit + "; the last: " + last_rejection_);
  return false;
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

// Stops only the stages that started: one whose start failed, or never came (a stage
// before it failed), is left to its destructor.
void Task::drain_and_stop() {
  if (source_started_ && sink_started_) {
    // From the first wait for the batches in flight (the source's end may have waited already).
    auto deadline = drain_since_.value_or(std::chrono::steady_clock::now()) + (stalled_ ? Millis(0) : kDrainTimeout);
    while (!tracker_.wait_all(kPollWait)) {
      commit(false);
      if (std::chrono::steady_clock::now() > deadline) {
        log(LogLevel::warn, "gave up waiting for the sink to confirm " +
                                std::to_string(tracker_.in_flight_records()) +
                                " records; they will be read again on the next run");
        break;
      }
    }
    Status s = sink_->flush();
    if (!s.is_ok()) log(LogLevel::warn, "sink flush: " + s.message());
    commit(true);
  }
  if (source_started_) source_->stop();
  for (std::size_t i = 0; i < transforms_started_; ++i) transforms_[i]->stop();
  if (sink_started_) sink_->stop();
}

}  // namespace pipehost::host
