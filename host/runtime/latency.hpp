// End-to-end latency of acknowledged records: the time from a record's timestamp (its
// Kafka CreateTime, or when a source made it) to the sink's acknowledgement. 1 ms
// buckets up to 10 s, so percentiles are exact to the millisecond.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>

namespace pipehost::host {

class LatencyHistogram {
 public:
  static constexpr int kBuckets = 10001;  // 0..9999 ms, then "10 s or more"

  void add(std::int64_t millis, std::uint64_t count = 1) {
    if (millis < 0) millis = 0;
    int b = millis >= kBuckets - 1 ? kBuckets - 1 : static_cast<int>(millis);
    buckets_[b].fetch_add(count, std::memory_order_relaxed);
  }
  std::uint64_t count() const {
    std::uint64_t n = 0;
    for (const auto& b : buckets_) n += b.load(std::memory_order_relaxed);
    return n;
  }
  // The smallest bucket (ms) at or below which `fraction` of the records are.
  std::int64_t percentile(double fraction) const {
    std::uint64_t total = count();
    if (total == 0) return -1;
    auto wanted = static_cast<std::uint64_t>(fraction * static_cast<double>(total) + 0.5);
    if (wanted == 0) wanted = 1;
    std::uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += buckets_[i].load(std::memory_order_relaxed);
      if (seen >= wanted) return i;
    }
    return kBuckets - 1;
  }

 private:
  std::array<std::atomic<std::uint64_t>, kBuckets> buckets_{};
};

}  // namespace pipehost::host
