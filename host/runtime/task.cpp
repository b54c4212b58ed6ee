#include "runtime/task.hpp"

#include <algorithm>
#include <thread>

#include "log.hpp"

namespace pipehost::host {
namespace {
constexpr Millis kPollWait{100};
constexpr Millis kDrainTimeout{30000};

std::string origin_text(const Record& r) {
  if (r.origin.partition < 0) return "a record";
  return "record " + std::string(r.origin.topic) + "/" + std::to_string(r.origin.partition) + "@" +
         std::to_string(r.origin.offset);
}
}  // namespace

Task::Task(const PipelineConfig& config, Services& services, PipelineState& state, int index)
    : config_(config), services_(services), state_(state), index_(index) {}

Task::~Task() {
  // Plugin objects go before their contexts.
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
  auto make_context = [&](const std::string& stage, StageContext::ResumeLookup resume = {}) {
    return std::make_unique<StageContext>(services_, state_, stage, index_, n, std::move(resume));
  };
  std::string error;
  sink_context_ = make_context("sink");
  sink_ = config_.sink.component->make_sink(config_.sink.options, *sink_context_, error);
  if (!sink_) return fail("sink", Status::fatal(error)), false;
  for (std::size_t i = 0; i < config_.transforms.size(); ++i) {
    const auto& t = config_.transforms[i];
    transform_contexts_.push_back(make_context(t.label));
    auto stage = t.component->make_transform(t.options, *transform_contexts_.back(), error);
    if (!stage) return fail(t.label, Status::fatal(error)), false;
    transforms_.push_back(std::move(stage));
  }
  auto resume = [this](std::string_view topic, std::int32_t partition) {
    std::optional<std::int64_t> out;
    for (int attempt = 0; attempt < 20 && !stopping(); ++attempt) {
      Status s = sink_->stored_position(topic, partition, out);
      if (s.is_ok()) return out;
      log(LogLevel::warn, "sink cannot tell the stored position of " + std::string(topic) + "/" +
                              std::to_string(partition) + " yet: " + s.message());
      if (s.code() != Code::retriable || !back_off(attempt)) break;
    }
    return std::optional<std::int64_t>{};
  };
  source_context_ = make_context("source", resume);
  source_ = config_.source.component->make_source(config_.source.options, *source_context_, error);
  if (!source_) return fail("source", Status::fatal(error)), false;
  if (config_.on_error == ErrorPolicy::dead_letter)
    dead_letter_ = std::make_unique<DeadLetterWriter>(services_, config_.dead_letter_topic, state_.name);
  return true;
}

bool Task::start_stages() {
  // Sink first: the source may ask it where to resume as soon as it starts.
  for (int attempt = 0;; ++attempt) {
    Status s = sink_->start();
    if (s.is_ok()) break;
    if (s.code() != Code::retriable) return fail("sink", s), false;
    log(LogLevel::warn, "sink not ready, retrying: " + s.message());
    if (!back_off(attempt)) return false;
  }
  for (std::size_t i = 0; i < transforms_.size(); ++i) {
    Status s = transforms_[i]->start();
    if (!s.is_ok()) return fail(config_.transforms[i].label, s), false;
  }
  Status s = source_->start();
  if (!s.is_ok()) return fail("source", s), false;
  return true;
}

void Task::run() noexcept {
  try {
    if (build() && start_stages()) loop();
    drain_and_stop();
  } catch (const std::exception& e) {
    state_.fail("pipeline '" + state_.name + "' stopped: internal error: " + e.what());
  }
}

void Task::loop() {
  int poll_attempt = 0;
  while (!stopping()) {
    if (state_.finish && !finish_sent_) {
      finish_sent_ = true;
      Status s = source_->finish_at_end();
      if (!s.is_ok()) return fail("source", s);
    }
    commit(false);
    if (state_.paused) {
      std::this_thread::sleep_for(kPollWait);
      continue;
    }
    if (!tracker_.wait_for_room(config_.max_in_flight_records, config_.max_in_flight_bytes, kPollWait))
      continue;
    Batch batch;
    batch.capacity = config_.batch_size;
    batch.records.reserve(config_.batch_size);  // no re-allocation (and moves) while filling
    bool ended = false;
    Status s = source_->poll(batch, kPollWait, ended);
    if (!s.is_ok()) {
      if (s.code() != Code::retriable) return fail("source", s);
      log(LogLevel::warn, "source: " + s.message() + " (retrying)");
      if (!back_off(poll_attempt++)) return;
      continue;
    }
    poll_attempt = 0;
    if (!batch.empty()) process(batch);
    if (ended) {
      source_ended_ = true;
      return;
    }
  }
}

void Task::process(Batch& batch) {
  std::uint64_t bytes = 0;
  std::vector<std::int64_t> timestamps;
  timestamps.reserve(batch.records.size());
  for (const auto& r : batch.records) {
    bytes += r.key.size() + r.payload.size();
    timestamps.push_back(r.timestamp_ms);
  }
  std::uint64_t records = batch.records.size();
  state_.records_read += records;
  // Two parts: the sink's confirmation, and this task having dealt with rejections.
  std::uint64_t sequence =
      tracker_.begin(positions_of(batch), records, bytes, 2, std::move(timestamps));
  // A batch given up on (failure or stop) completes with an error, so nothing after it
  // is committed and the drain does not wait for it.
  auto abandon = [&](int parts) {
    for (int i = 0; i < parts; ++i) tracker_.complete(sequence, Status::retriable("abandoned"));
  };
  for (std::size_t i = 0; i < transforms_.size(); ++i)
    if (!run_transform(i, batch)) return abandon(2);
  if (!write_to_sink(batch, sequence)) return abandon(2);
  if (!handle_rejections(batch, "sink")) return abandon(1);
  tracker_.complete(sequence, Status::ok());
}

bool Task::run_transform(std::size_t index, Batch& batch) {
  const std::string& label = config_.transforms[index].label;
  for (int attempt = 0;; ++attempt) {
    Status s = transforms_[index]->process(batch);
    if (s.is_ok()) break;
    if (s.code() != Code::retriable) return fail(label, s), false;
    log(LogLevel::warn, label + ": " + s.message() + " (retrying)");
    if (!back_off(attempt)) return false;
  }
  if (!handle_rejections(batch, label)) return false;
  batch.compact();
  return true;
}

bool Task::write_to_sink(Batch& batch, std::uint64_t sequence) {
  for (int attempt = 0;; ++attempt) {
    DeliveryTracker* tracker = &tracker_;
    Status s = sink_->write(batch, [tracker, sequence](Status status) {
      tracker->complete(sequence, status);
    });
    if (s.is_ok()) break;
    if (s.code() != Code::retriable) return fail("sink", s), false;
    log(LogLevel::warn, "sink: " + s.message() + " (retrying the batch)");
    batch.compact();
    if (!back_off(attempt)) return false;
  }
  return true;
}

bool Task::handle_rejections(Batch& batch, const std::string& stage) {
  if (batch.rejections.empty()) return true;
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
      for (const auto& r : batch.rejections) {
        // The first ten, then every thousandth: enough to see, not a flood.
        if (skipped_logged_ < 10 || skipped_logged_ % 1000 == 0)
          log(LogLevel::warn, stage + ": skipped " + origin_text(r.record) + ": " + r.reason);
        ++skipped_logged_;
      }
      break;
    case ErrorPolicy::dead_letter:
      for (int attempt = 0;; ++attempt) {
        Status s = dead_letter_->write(batch.rejections, stage);
        if (s.is_ok()) break;
        if (s.code() != Code::retriable) return fail(stage, s), false;
        log(LogLevel::warn, s.message() + " (retrying)");
        if (!back_off(attempt)) return false;
      }
      break;
  }
  batch.rejections.clear();
  return true;
}

void Task::commit(bool force) {
  DeliveryTracker::Drained drained = tracker_.drain();
  state_.records_acked += drained.records;
  for (const auto& p : drained.positions) {
    auto same = std::find_if(pending_commit_.begin(), pending_commit_.end(), [&](const Position& q) {
      return q.partition == p.partition && q.topic == p.topic;
    });
    if (same == pending_commit_.end()) pending_commit_.push_back(p);
    else same->next_offset = p.next_offset;
  }
  // "retriable" marks a batch this task abandoned; anything else is the sink's failure.
  if (drained.error && drained.error->code() != Code::retriable) fail("sink", *drained.error);
  auto now = std::chrono::steady_clock::now();
  if (pending_commit_.empty()) return;
  if (!force && now - last_commit_ < Millis(config_.commit_interval_ms)) return;
  Status s = source_->commit(pending_commit_);
  if (!s.is_ok()) log(LogLevel::warn, "source commit failed (will retry): " + s.message());
  else pending_commit_.clear();
  last_commit_ = now;
}

void Task::drain_and_stop() {
  if (source_ && sink_) {
    auto deadline = std::chrono::steady_clock::now() + kDrainTimeout;
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
  if (source_) source_->stop();
  for (auto& t : transforms_) t->stop();
  if (sink_) sink_->stop();
}

}  // namespace pipehost::host
