#include "runtime/pipeline.hpp"

#include "log.hpp"
#include "runtime/stage_context.hpp"
#include "runtime/task.hpp"

namespace pipehost::host {

Pipeline::Pipeline(const PipelineConfig& config, Services& services)
    : config_(config), services_(services), state_(config),
      tasks_left_(config.tasks) {}

Pipeline::~Pipeline() {
  request_stop();
  join();
}

void Pipeline::start() {
  for (int i = 0; i < config_.tasks; ++i) {
    threads_.emplace_back([this, i] {
      {
        Task task(config_, services_, state_, i);
        task.run();
      }
      --tasks_left_;
    });
  }
}

void Pipeline::join() {
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

void StageContext::log(LogLevel level, std::string_view message) noexcept {
  try {
    log_line(level, prefix_, message);
  } catch (...) {
  }
}

}  // namespace pipehost::host
