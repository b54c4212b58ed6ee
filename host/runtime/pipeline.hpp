// A running pipeline: `tasks` workers, each with its own source, transforms and sink,
// sharing one stop/finish state and one set of progress counters.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/model.hpp"
#include "runtime/latency.hpp"
#include "runtime/services.hpp"

namespace pipehost::host {

struct PipelineState {
  explicit PipelineState(std::string n, int tasks) : name(std::move(n)), expected(tasks) {}
  std::string name;
  std::atomic<bool> stop{false};    // drain, commit and end now
  std::atomic<bool> finish{false};  // sources end once caught up (end_after)
  std::atomic<bool> paused{false};  // admin: stop polling the source until resumed
  std::atomic<std::uint64_t> records_read{0};
  std::atomic<std::uint64_t> records_acked{0};
  std::atomic<std::uint64_t> records_rejected{0};
  std::atomic<std::uint64_t> records_dead_lettered{0};
  std::atomic<std::uint64_t> rewinds{0};  // a sink's store lost writes: read again
  LatencyHistogram latency;  // record timestamp -> sink acknowledgement
  std::vector<std::atomic<std::uint64_t>> expected;  // per task; 0 = unbounded
  std::mutex failure_mutex;
  std::string failure;

  void fail(const std::string& message) {
    {
      std::lock_guard lock(failure_mutex);
      if (failure.empty()) failure = message;
    }
    stop = true;
  }
  bool failed() {
    std::lock_guard lock(failure_mutex);
    return !failure.empty();
  }
  std::string failure_message() {
    std::lock_guard lock(failure_mutex);
    return failure;
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
  bool done() const { return tasks_left_ == 0; }
  void request_stop() { state_.stop = true; }
  void request_finish() { state_.finish = true; }
  PipelineState& state() { return state_; }
  const PipelineConfig& config() const { return config_; }

 private:
  const PipelineConfig& config_;
  Services& services_;
  PipelineState state_;
  std::atomic<int> tasks_left_;
  std::vector<std::thread> threads_;
};

}  // namespace pipehost::host
