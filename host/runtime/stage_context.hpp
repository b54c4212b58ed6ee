// The Context one stage of one task sees.
#pragma once
#include <functional>
#include <string>

#include "pipehost/context.hpp"
#include "runtime/pipeline.hpp"

namespace pipehost::host {

class StageContext final : public Context {
 public:
  using ResumeLookup = std::function<std::optional<std::int64_t>(std::string_view, std::int32_t)>;
  using TakeAcknowledged = std::function<std::vector<Position>()>;

  StageContext(Services& services, PipelineState& state, std::string stage, int task_index,
               int task_count, ResumeLookup resume, TakeAcknowledged acknowledged = {})
      : services_(services), state_(state), stage_(std::move(stage)), task_index_(task_index),
        task_count_(task_count), resume_(std::move(resume)), acknowledged_(std::move(acknowledged)),
        prefix_(state.name + "/" + stage_ + (task_count > 1 ? "#" + std::to_string(task_index) : "")) {}

  std::string_view pipeline() const noexcept override { return state_.name; }
  std::string_view stage() const noexcept override { return stage_; }
  int task_index() const noexcept override { return task_index_; }
  int task_count() const noexcept override { return task_count_; }
  void log(LogLevel level, std::string_view message) noexcept override;
  Counter& counter(std::string_view name) noexcept override {
    return services_.metrics.counter({state_.name, stage_, std::string(name), {}});
  }
  SchemaRegistry& schema_registry() noexcept override { return *services_.registry; }
  std::string kafka_bootstrap() const noexcept override { return services_.kafka_bootstrap; }
  StringMap kafka_properties() const noexcept override { return services_.kafka_properties; }
  std::optional<std::int64_t> resume_position(std::string_view topic,
                                              std::int32_t partition) noexcept override {
    try {
      return resume_ ? resume_(topic, partition) : std::nullopt;
    } catch (...) {
      return std::nullopt;
    }
  }
  std::vector<Position> take_acknowledged() noexcept override {
    try {
      return acknowledged_ ? acknowledged_() : std::vector<Position>{};
    } catch (...) {
      return {};
    }
  }
  void set_expected_total(std::uint64_t total) noexcept override {
    state_.expected[static_cast<std::size_t>(task_index_)] = total;
  }
  bool stopping() const noexcept override { return state_.stopping(services_.stopping); }
  std::string data_dir() const noexcept override { return services_.data_dir; }
  Gauge& gauge(std::string_view name, const MetricLabels& labels) noexcept override {
    return services_.metrics.gauge({state_.name, stage_, std::string(name), labels});
  }
  void set_ready(bool ready) noexcept override {
    if (ready == ready_) return;
    ready_ = ready;
    state_.stages_not_ready += ready ? -1 : 1;
  }
  ~StageContext() override {
    if (!ready_) state_.stages_not_ready -= 1;
  }
  bool reading_positions_only() const noexcept override { return reading_positions_only_; }
  // For `pipehost positions`, which builds a sink only to read its stored positions.
  void set_reading_positions_only() { reading_positions_only_ = true; }
  const std::string& prefix() const { return prefix_; }

 private:
  Services& services_;
  PipelineState& state_;
  std::string stage_;
  int task_index_;
  int task_count_;
  ResumeLookup resume_;
  TakeAcknowledged acknowledged_;
  std::string prefix_;
  bool ready_ = true;
  bool reading_positions_only_ = false;
};

}  // namespace pipehost::host
