// What every pipeline shares in one process.
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "pipehost/context.hpp"
#include "pipehost/options.hpp"

namespace pipehost::host {

// Counters and gauges the stages register; the admin endpoint exposes them with the
// pipeline and stage as labels.
struct MetricKey {
  std::string pipeline, stage, name;
  MetricLabels labels;
  auto operator<=>(const MetricKey&) const = default;
};

class Metrics {
 public:
  Counter& counter(const MetricKey& key) {
    std::lock_guard lock(mutex_);
    auto& slot = counters_[key];
    if (!slot) slot = std::make_unique<Counter>();
    return *slot;
  }
  Gauge& gauge(const MetricKey& key) {
    std::lock_guard lock(mutex_);
    auto& slot = gauges_[key];
    if (!slot) slot = std::make_unique<Gauge>();
    return *slot;
  }
  std::vector<std::pair<MetricKey, std::uint64_t>> counters() const {
    std::lock_guard lock(mutex_);
    std::vector<std::pair<MetricKey, std::uint64_t>> out;
    for (const auto& [key, c] : counters_) out.emplace_back(key, c->value());
    return out;
  }
  std::vector<std::pair<MetricKey, std::int64_t>> gauges() const {
    std::lock_guard lock(mutex_);
    std::vector<std::pair<MetricKey, std::int64_t>> out;
    for (const auto& [key, g] : gauges_)
      if (g->present()) out.emplace_back(key, g->value());
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::map<MetricKey, std::unique_ptr<Counter>> counters_;
  std::map<MetricKey, std::unique_ptr<Gauge>> gauges_;
};

struct Services {
  std::string kafka_bootstrap;
  StringMap kafka_properties;
  SchemaRegistry* registry = nullptr;
  std::string data_dir;
  Metrics metrics;
  std::atomic<bool> stopping{false};  // SIGINT/SIGTERM: every pipeline drains and stops
  // Called by a pipeline's supervisor thread when the pipeline has ended (for good), so
  // that whoever waits for the pipelines learns it at once rather than at its next check.
  std::function<void()> pipeline_ended;
  // The embedded broker's log begins empty in every process: a position a sink stored
  // for one of its partitions before this process first resumed it is an earlier run's.
  // Per sink definition (its plugin and options): a reload that points a pipeline's sink
  // at another store (a database, a file) finds that store's positions an earlier run's
  // too, until this process has resumed from them once.
  bool kafka_embedded = false;
  bool first_resume(const std::string& pipeline, const std::string& sink_plugin, const Options& sink_options,
                    std::string_view topic, std::int32_t partition) {
    std::lock_guard lock(resumed_mutex_);
    return resumed_.emplace(pipeline, sink_plugin, sink_options.values, std::string(topic), partition).second;
  }
  void undo_first_resume(const std::string& pipeline, const std::string& sink_plugin,
                         const Options& sink_options, std::string_view topic, std::int32_t partition) {
    std::lock_guard lock(resumed_mutex_);
    resumed_.erase({pipeline, sink_plugin, sink_options.values, std::string(topic), partition});
  }

 private:
  std::mutex resumed_mutex_;
  std::set<std::tuple<std::string, std::string, decltype(Options::values), std::string, std::int32_t>> resumed_;
};

}  // namespace pipehost::host
