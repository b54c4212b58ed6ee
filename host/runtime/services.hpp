// What every pipeline shares in one process.
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
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
  // A reload may change the pipeline's sink: a definition (plugin and options) this
  // process resumed the partition with before is trusted (a restart, a change undone);
  // a new one may write to another store (a database, a file) holding an earlier run's
  // position, and its stored position is this process's only if it is where this process
  // last acknowledged the partition (a reload drains the old pipeline first; a change of
  // a timeout keeps the store).
  bool kafka_embedded = false;
  enum class Resumed { never, this_sink, other_sink };
  Resumed resumed_before(const std::string& pipeline, const std::string& sink_plugin,
                         const Options& sink_options, std::string_view topic, std::int32_t partition) {
    std::lock_guard lock(resumed_mutex_);
    auto it = resumed_.find({pipeline, std::string(topic), partition});
    if (it == resumed_.end()) return Resumed::never;
    return it->second.count({sink_plugin, sink_options.values}) ? Resumed::this_sink : Resumed::other_sink;
  }
  void note_resumed(const std::string& pipeline, const std::string& sink_plugin, const Options& sink_options,
                    std::string_view topic, std::int32_t partition) {
    std::lock_guard lock(resumed_mutex_);
    resumed_[{pipeline, std::string(topic), partition}].insert({sink_plugin, sink_options.values});
  }
  // The next offset this process last acknowledged (or resumed from) for a partition.
  void note_acknowledged(const std::string& pipeline, std::string_view topic, std::int32_t partition,
                         std::int64_t next_offset) {
    std::lock_guard lock(resumed_mutex_);
    acknowledged_[{pipeline, std::string(topic), partition}] = next_offset;
  }
  std::optional<std::int64_t> last_acknowledged(const std::string& pipeline, std::string_view topic,
                                                std::int32_t partition) {
    std::lock_guard lock(resumed_mutex_);
    auto it = acknowledged_.find({pipeline, std::string(topic), partition});
    if (it == acknowledged_.end()) return std::nullopt;
    return it->second;
  }

 private:
  using SinkDefinition = std::pair<std::string, decltype(Options::values)>;
  using PartitionKey = std::tuple<std::string, std::string, std::int32_t>;  // pipeline, topic, partition
  std::mutex resumed_mutex_;
  std::map<PartitionKey, std::set<SinkDefinition>> resumed_;
  std::map<PartitionKey, std::int64_t> acknowledged_;
};

}  // namespace pipehost::host
