#include "runtime/pipeline.hpp"

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <random>

#include "log.hpp"
#include "runtime/stage_context.hpp"
#include "runtime/task.hpp"

namespace pipehost::host {

Pipeline::Pipeline(const PipelineConfig& config, Services& services)
    : config_(config), services_(services), state_(config) {}

Pipeline::~Pipeline() {
  request_stop();
  join();
}

void Pipeline::start() {
  supervisor_ = std::thread([this] { supervise(); });
}

void Pipeline::join() {
  std::lock_guard lock(supervisor_mutex_);
  if (supervisor_.joinable()) supervisor_.join();
}

bool Pipeline::restart() {
  // Under the lock: two admin calls at once must not both find the pipeline ended (the
  // second would wait for the run the first started, then start one more).
  std::lock_guard lock(supervisor_mutex_);
  if (state_.stop_for_good || services_.stopping || state_.restarting) return false;
  if (!done_) {
    if (restart_requested_) return false;  // asked already: the tasks are draining
    restart_requested_ = true;
    state_.stop = true;  // the tasks drain; supervise() starts them again
    return true;
  }
  restart_requested_ = false;  // one the run ended before it saw
  if (supervisor_.joinable()) supervisor_.join();
  state_.clear_failure();
  state_.restarts += 1;
  done_ = false;
  supervisor_ = std::thread([this] { supervise(); });
  return true;
}

void Pipeline::run_tasks() {
  {
    std::lock_guard lock(state_.start_mutex);
    state_.tasks_before_source = 0;
  }
  std::mutex ended_mutex;
  std::condition_variable ended;
  int running = config_.tasks;
  std::vector<std::thread> threads;
  for (int i = 0; i < config_.tasks; ++i)
    threads.emplace_back([&, i] {
      {
        Task task(config_, services_, state_, i);
        task.run();
      }
      std::lock_guard lock(ended_mutex);
      --running;
      ended.notify_all();
    });
  if (config_.stall_timeout_ms > 0) {  // woken by the tasks' end; every 100 ms for the watch
    std::unique_lock lock(ended_mutex);
    while (!ended.wait_for(lock, std::chrono::milliseconds(100), [&] { return running == 0; })) {
      lock.unlock();
      watch_for_stalls();
      lock.lock();
    }
  }
  for (auto& t : threads) t.join();
  state_.set_stall("");
}

// A call into a stage that has not returned for stall_timeout_ms (a sink waiting on a
// lock, a transform looping) is reported once, and shown until it returns: a thread
// cannot be stopped from outside, so restarting is left to the operator.
void Pipeline::watch_for_stalls() {
  if (config_.stall_timeout_ms <= 0) return;
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
                 .count();
  std::string stall;
  for (std::size_t t = 0; t < state_.busy_since_ms.size(); ++t) {
    std::int64_t since = state_.busy_since_ms[t];
    if (since == 0 || now - since < config_.stall_timeout_ms) continue;
    const std::string& stage = state_.stages[static_cast<std::size_t>(state_.busy_stage[t].load())].label;
    stall = stage + " of task " + std::to_string(t) + " has been in one call for " +
            std::to_string((now - since) / 1000) + " s";
  }
  bool known = !state_.current_stall().empty();
  if (!stall.empty() && !known) {
    state_.stalls += 1;
    log_line(LogLevel::error, config_.name,
             "stalled: " + stall + " (stall_timeout_ms = " + std::to_string(config_.stall_timeout_ms) + ")");
  } else if (stall.empty() && known) {
    log_line(LogLevel::info, config_.name, "no longer stalled");
  }
  state_.set_stall(stall);
}

// Runs the tasks; after a failure, and while restart_attempts allow, builds and starts
// them again after an exponential backoff with jitter (so pipelines that failed together,
// e.g. on a database restart, do not come back in lockstep). The sources resume from the
// committed (or sink-stored) positions, so nothing acknowledged is lost and what was in
// flight is read again.
void Pipeline::supervise() {
  int attempt = 0;
  std::minstd_rand jitter(static_cast<unsigned>(
      std::hash<std::string>{}(config_.name) ^
      static_cast<std::size_t>(std::chrono::steady_clock::now().time_since_epoch().count())));
  const auto healthy_after = std::chrono::milliseconds(config_.restart_backoff_max_ms);
  for (;;) {
    auto started = std::chrono::steady_clock::now();
    run_tasks();
    if (restart_requested_.exchange(false) && !state_.stop_for_good && !services_.stopping) {
      state_.clear_failure();
      state_.restarts += 1;
      continue;
    }
    if (!state_.failed() || state_.stop_for_good || services_.stopping) break;
    // Failed for good: said now, not only in the summary at exit (other pipelines of the
    // process may run for days).
    if (config_.restart_attempts == 0) {
      log_line(LogLevel::error, config_.name,
               state_.failure_message() + "; it stays failed (restart_attempts = 0)");
      state_.failure_logged = true;
      break;
    }
    if (std::chrono::steady_clock::now() - started >= healthy_after) attempt = 0;
    if (attempt >= config_.restart_attempts) {
      log_line(LogLevel::error, config_.name,
               state_.failure_message() + "; failed again after " + std::to_string(attempt) +
                   " restart(s), it stays failed");
      state_.failure_logged = true;
      break;
    }
    ++attempt;
    long long backoff = std::min<long long>(config_.restart_backoff_max_ms,
                                            static_cast<long long>(config_.restart_backoff_ms)
                                                << std::min(attempt - 1, 30));
    long long wait = backoff / 2 + static_cast<long long>(jitter() % static_cast<unsigned>(backoff / 2 + 1));
    state_.restarting = true;
    log_line(LogLevel::warn, config_.name,
             state_.failure_message() + "; restart " + std::to_string(attempt) + " of " +
                 std::to_string(config_.restart_attempts) + " in " + std::to_string(wait) + " ms");
    if (!wait_to_restart(std::chrono::milliseconds(wait))) {
      state_.restarting = false;
      break;
    }
    restart_requested_ = false;  // an admin restart that came before `restarting` was set: this is it
    state_.clear_failure();
    state_.restarts += 1;
    state_.restarting = false;
  }
  done_ = true;
  if (services_.pipeline_ended) services_.pipeline_ended();
}

bool Pipeline::wait_to_restart(std::chrono::milliseconds wait) {
  auto until = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < until) {
    if (state_.stop_for_good || services_.stopping) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

void StageContext::log(LogLevel level, std::string_view message) noexcept {
  try {
    log_line(level, prefix_, message);
  } catch (...) {
  }
}

}  // namespace pipehost::host
