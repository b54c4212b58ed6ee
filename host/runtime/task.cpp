#include "runtime/task.hpp"

#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <utility>

#include "log.hpp"

namespace pipehost::host {
namespace {
constexpr Millis kDrainTimeout{30000};

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
