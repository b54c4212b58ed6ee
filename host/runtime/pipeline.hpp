// A running pipeline: `tasks` workers, each with its own source, transforms and sink,
// sharing one stop/finish state and one set of progress counters.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "config/model.hpp"
#include "runtime/latency.hpp"
#include "runtime/services.hpp"
#include "runtime/tap.hpp"

namespace pipehost::host {

// What one stage of a pipeline did, summed over its tasks.
struct StageStats {
  explicit StageStats(std::string l) : label(std::move(l)) {}
  std::string label;  // "source", "transforms[0]" (or its name), "sink"
  std::atomic<std::uint64_t> records_in{0};
  std::atomic<std::uint64_t> records_out{0};
  std::atomic<std::uint64_t> records_rejected{0};
  std::atomic<std::uint64_t> retries{0};
  std::atomic<std::uint64_t> cpu_ns{0};  // thread CPU time spent in the stage's calls
};

struct PipelineState {
  explicit PipelineState(const PipelineConfig& config)
      : name(config.name), in_flight_records(config.tasks), in_flight_bytes(config.tasks),
        busy_since_ms(config.tasks), busy_stage(config.tasks), expected(config.tasks) {
    stages.emplace_back("source");
    for (const auto& t : config.transforms) stages.emplace_back(t.label);
    stages.emplace_back("sink");
  }
  std::string name;
  std::atomic<bool> stop{false};    // drain, commit and end now (cleared for a restart)
  std::atomic<bool> stop_for_good{false};  // Pipeline::request_stop: never cleared
  bool stopping(bool host_stopping) const { return stop || stop_for_good || host_stopping; }
  std::atomic<bool> finish{false};  // sources end once caught up (end_after)
  std::atomic<bool> paused{false};  // admin: stop polling the source until resumed
  std::atomic<bool> restarting{false};  // failed, waiting to start again (restart_attempts)
  std::atomic<bool> failure_logged{false};  // its failure for good was logged when it came
  std::atomic<std::uint64_t> records_read{0};
  std::atomic<std::uint64_t> records_acked{0};
  std::atomic<std::uint64_t> records_rejected{0};
  std::atomic<std::uint64_t> records_dead_lettered{0};
  std::atomic<std::uint64_t> rewinds{0};  // a sink's store lost writes: read again
  std::atomic<int> tasks_started{0};       // tasks whose stages all started
  // Tasks whose sink and transforms have started: the sources start together once all
  // have, so a consumer group's members join in one rebalance (not one, then a second
  // when the later ones join). Reset for each run of the tasks.
  std::mutex start_mutex;
  std::condition_variable start_changed;  // a task arrived, or the pipeline failed
  int tasks_before_source = 0;            // guarded by start_mutex
  std::atomic<int> stages_not_ready{0};    // stages that said set_ready(false)
  std::atomic<std::uint64_t> commits{0};   // positions handed to the source to commit
  std::atomic<std::uint64_t> restarts{0};  // restarts after a failure (restart policy)
  LatencyHistogram latency;  // record timestamp -> sink acknowledgement
  DurationHistogram batch_duration;  // one batch through the transforms to the sink's hands
  std::deque<StageStats> stages;     // source, transforms in order, sink
  TapPoint taps;                     // live samples for `pipehost tap`
  std::vector<std::atomic<std::uint64_t>> in_flight_records;  // per task
  std::vector<std::atomic<std::uint64_t>> in_flight_bytes;    // per task
  // Per task: when the call into a stage now running began (steady clock ms; 0: none),
  // and which stage (an index into `stages`), for stall detection.
  std::vector<std::atomic<std::int64_t>> busy_since_ms;
  std::vector<std::atomic<int>> busy_stage;
  std::atomic<std::uint64_t> stalls{0};
  // The acknowledged position of each source partition, as last handed to the source to
  // commit ("topic/partition" -> next offset), for GET /pipelines/NAME/positions.
  std::mutex positions_mutex;
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> acknowledged_positions;
  std::mutex stall_mutex;
  std::string stall;  // the stall now seen, "" when none
  void set_stall(std::string what) {
    std::lock_guard lock(stall_mutex);
    stall = std::move(what);
  }
  std::string current_stall() {
    std::lock_guard lock(stall_mutex);
    return stall;
  }
  std::vector<std::atomic<std::uint64_t>> expected;  // per task; 0 = unbounded
  std::mutex failure_mutex;
  std::string failure;
  std::string last_failure;  // the failure a restart recovered from

  void fail(const std::string& message) {
    {
      std::lock_guard lock(failure_mutex);
      if (failure.empty()) failure = message;
    }
    {
      std::lock_guard lock(start_mutex);  // tasks waiting to start their sources stop
      stop = true;
    }
    start_changed.notify_all();
  }
  bool failed() {
    std::lock_guard lock(failure_mutex);
    return !failure.empty();
  }
  std::string failure_message() {
    std::lock_guard lock(failure_mutex);
    return failure;
  }
  std::string last_failure_message() {
    std::lock_guard lock(failure_mutex);
    return failure.empty() ? last_failure : failure;
  }
  // Before a restart: the failure becomes the last one, and the tasks may run again.
  void clear_failure() {
    std::lock_guard lock(failure_mutex);
    last_failure = std::exchange(failure, {});
    failure_logged = false;
    stop = false;
  }
  std::uint64_t expected_total() const {
    std::uint64_t sum = 0;
    for (const auto& e : expected) {
      if (e == 0) return 0;
      sum += e;
    }
    return sum;
  }
};

class Pipeline {
 public:
  Pipeline(const PipelineConfig& config, Services& services);
  ~Pipeline();
  void start();
  void join();
  bool done() const { return done_; }
  // For good (a reload retiring it, the end of the process): a restart under way, or one
  // a backoff is about to begin, sees it too (PipelineState::stopping).
  void request_stop() {
    state_.stop_for_good = true;
    state_.stop = true;
  }
  void request_finish() { state_.finish = true; }
  // Admin: drain the tasks and start them again (a failed pipeline too, once its cause is
  // fixed); they resume from the committed positions. False, doing nothing, while the
  // pipeline is stopping or a restart is under way.
  bool restart();
  PipelineState& state() { return state_; }
  const PipelineConfig& config() const { return config_; }

 private:
  const PipelineConfig& config_;
  Services& services_;
  PipelineState state_;
  void supervise();
  void run_tasks();
  void watch_for_stalls();
  // Waits up to `wait`; false when asked to stop meanwhile.
  bool wait_to_restart(std::chrono::milliseconds wait);

  std::atomic<bool> done_{false};
  std::atomic<bool> restart_requested_{false};
  std::mutex supervisor_mutex_;  // one restart() at a time; it may start a new supervisor
  std::thread supervisor_;
};

}  // namespace pipehost::host
