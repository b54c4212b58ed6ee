// What every pipeline shares in one process.
#pragma once
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pipehost/context.hpp"

namespace pipehost::host {

class Metrics {
 public:
  Counter& counter(const std::string& name) {
    std::lock_guard lock(mutex_);
    auto& slot = counters_[name];
    if (!slot) slot = std::make_unique<Counter>();
    return *slot;
  }
  std::vector<std::pair<std::string, std::uint64_t>> snapshot() const {
    std::lock_guard lock(mutex_);
    std::vector<std::pair<std::string, std::uint64_t>> out;
    for (const auto& [name, c] : counters_) out.emplace_back(name, c->value());
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Counter>> counters_;
};

struct Services {
  std::string kafka_bootstrap;
  StringMap kafka_properties;
  SchemaRegistry* registry = nullptr;
  std::string data_dir;
  Metrics metrics;
  std::atomic<bool> stopping{false};  // SIGINT/SIGTERM: every pipeline drains and stops
};

}  // namespace pipehost::host
