// Per-key running totals shared by every task of one pipeline in this process, so a
// key's sum is right even after its partition moves to another task, and a record
// redelivered by a rebalance is not counted twice. Kept in integer units of
// 10^-scale, so totals are exact.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

namespace pipehost::logsink {

class RunningTotals {
 public:
  explicit RunningTotals(int scale) : scale_(scale) {}
  // Adds and returns the new total, in units; nullopt for a record from a partition
  // position already counted (redelivered after a rebalance): counted once per process.
  std::optional<std::int64_t> add(const std::string& key, std::int64_t units,
                                  std::string_view topic, std::int32_t partition,
                                  std::int64_t offset) {
    std::lock_guard lock(mutex_);
    if (partition >= 0) {
      auto& next = next_offsets_[{std::string(topic), partition}];
      if (offset < next) return std::nullopt;
      next = offset + 1;
    }
    ++records_;
    return totals_[key] += units;
  }
  std::optional<std::int64_t> next_offset(std::string_view topic, std::int32_t partition) const {
    std::lock_guard lock(mutex_);
    auto it = next_offsets_.find({std::string(topic), partition});
    if (it == next_offsets_.end()) return std::nullopt;
    return it->second;
  }
  std::map<std::string, std::int64_t> snapshot() const {
    std::lock_guard lock(mutex_);
    return totals_;
  }
  std::uint64_t records() const {
    std::lock_guard lock(mutex_);
    return records_;
  }
  int scale() const { return scale_; }
  // Sinks sharing these totals: the last one to leave prints the summary.
  void join() {
    std::lock_guard lock(mutex_);
    ++members_;
  }
  bool leave_last() {
    std::lock_guard lock(mutex_);
    return --members_ == 0;
  }

  // One instance per pipeline name, alive while any sink of that pipeline uses it.
  static std::shared_ptr<RunningTotals> for_pipeline(const std::string& pipeline, int scale);

 private:
  int scale_;
  mutable std::mutex mutex_;
  std::map<std::string, std::int64_t> totals_;
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> next_offsets_;
  std::uint64_t records_ = 0;
  int members_ = 0;
};

// "1234.50" for units=123450, scale=2; exact.
std::string format_units(std::int64_t units, int scale);
// llround(value * 10^scale)
std::int64_t to_units(double value, int scale);

}  // namespace pipehost::logsink
