// One worker of a pipeline: reads a batch from its source, runs it through the
// transforms, hands it to the sink, and commits the source once the sink acknowledged.
#pragma once
#include <chrono>
#include <deque>
#include <functional>
#include <utility>
#include <memory>
#include <optional>
#include <vector>

#include "runtime/dead_letter.hpp"
#include "runtime/delivery_tracker.hpp"
#include "runtime/pipeline.hpp"
#include "runtime/stage_context.hpp"

namespace pipehost::host {

class Task {
 public:
  Task(const PipelineConfig& config, Services& services, PipelineState& state, int index);
  ~Task();
  // Runs until the source ends or the pipeline stops; never throws.
  void run() noexcept;

 private:
  static constexpr Millis kPollWait{100};  // between looks at whether the pipeline stops
  bool build();
  bool start_stage(const std::string& label, std::size_t stage, const std::function<Status()>& start);
  bool start_stages();
  void loop();
  // Carries one source batch through the transforms to the sink.
  void deliver(Batch& batch);
  bool run_transform(std::size_t index, Batch& batch);
  bool prepare_sink(Batch& batch);
  enum class Written { ok, failed, rewound };
  Written write_to_sink(Batch& batch, std::uint64_t sequence);
  bool rewind_source(const Batch& batch, const Status& why);
  // A sink's done asked to read again (rewind_pending_): once every batch in flight
  // settles, the source reads again from the first record of the first of them.
  bool rewind_in_flight();
  bool rewind_asked_at_end();
  Status retried(const std::function<Status()>& attempt, const std::string& what);
  void log_rejections(const std::vector<Rejection>& rejections, const std::string& stage,
                      const std::string& done_with);
  std::optional<std::int64_t> resume_from_sink(std::string_view topic, std::int32_t partition);
  Status forget_earlier_run(std::string_view topic, std::int32_t partition, std::int64_t stored);
  bool handle_rejections(Batch& batch, const std::string& stage, StageStats& stats);
  bool apply_pause();
  void commit(bool force);
  void collect_acknowledged();  // drained acknowledgements into pending_commit_
  std::vector<Position> take_acknowledged();
  void drain_and_stop();
  bool stopping() const { return state_.stopping(services_.stopping); }
  void fail(const std::string& stage, const Status& status);
  // Sleeps for the next backoff step (100 ms doubling to 5 s); false when stopping.
  bool back_off(int attempt);
  void log(LogLevel level, const std::string& message);
  // The breaker (max_error_rate) after a batch of `records`; false when it tripped.
  bool check_error_rate(std::size_t records);
  // stall_timeout_ms: false when records in flight went unacknowledged too long.
  bool check_acknowledgements();

  std::deque<std::pair<std::size_t, std::size_t>> error_window_;  // (records, rejected) per batch
  std::size_t window_records_ = 0;
  std::size_t window_rejected_ = 0;
  std::size_t batch_rejected_ = 0;
  bool acknowledged_since_check_ = false;
  bool stalled_ = false;
  std::chrono::steady_clock::time_point last_progress_ = std::chrono::steady_clock::now();

  const PipelineConfig& config_;
  Services& services_;
  PipelineState& state_;
  int index_;
  std::unique_ptr<StageContext> source_context_;
  std::vector<std::unique_ptr<StageContext>> transform_contexts_;
  std::unique_ptr<StageContext> sink_context_;
  std::unique_ptr<StageContext> dead_letter_context_;
  std::unique_ptr<SourceStage> source_;
  std::vector<std::unique_ptr<TransformStage>> transforms_;
  std::unique_ptr<SinkStage> sink_;
  bool source_started_ = false, sink_started_ = false;  // stop() goes to started stages only
  std::size_t transforms_started_ = 0;
  std::unique_ptr<DeadLetterWriter> dead_letter_;
  DeliveryTracker tracker_{&state_.latency};
  std::vector<Position> pending_commit_;
  // Per span of the batch being delivered whose start the source cannot vouch for (from
  // = -1, a partition's first read from an unknown start): the offset of its first record
  // as polled, where a rewind reads it again from when the sink holds no position.
  std::vector<std::int64_t> first_polled_;
  RewoundDeadLetters rewound_letters_;
  std::optional<Status> rewind_pending_;  // a batch's done said Code::rewind
  std::optional<std::chrono::steady_clock::time_point> drain_since_;  // first waited for all in flight
  std::chrono::steady_clock::time_point last_commit_ = std::chrono::steady_clock::now();
  bool finish_sent_ = false;
  bool last_poll_empty_ = false;  // the source had nothing: it has caught up
  bool source_ended_ = false;
  // The sink could not say where a partition resumes (on the task thread, in a poll).
  bool resume_failed_ = false;
  bool paused_ = false;             // what the source was last told
  bool poll_while_paused_ = false;  // the source keeps its connections alive when paused
  std::uint64_t rejections_logged_ = 0;  // see log_rejections
  std::string last_rejection_;  // for the breaker's message
};

}  // namespace pipehost::host
