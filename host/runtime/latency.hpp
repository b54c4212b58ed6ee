// End-to-end latency of acknowledged records: the time from a record's timestamp (its
// Kafka CreateTime, or when a source made it) to the sink's acknowledgement. 1 ms
// buckets up to 10 s, so percentiles are exact to the millisecond.
#pragma once
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace pipehost::host {

class LatencyHistogram {
 public:
  static constexpr int kBuckets = 10001;  // 0..9999 ms, then "10 s or more"

  void add(std::int64_t millis, std::uint64_t count = 1) {
    if (millis < 0) millis = 0;
    int b = millis >= kBuckets - 1 ? kBuckets - 1 : static_cast<int>(millis);
    buckets_[b].fetch_add(count, std::memory_order_relaxed);
    sum_ms_.fetch_add(static_cast<std::uint64_t>(millis) * count, std::memory_order_relaxed);
  }
  std::uint64_t sum_ms() const { return sum_ms_.load(std::memory_order_relaxed); }
  // Records at or below `millis` (the last bucket holds everything from 10 s up).
  std::uint64_t count_at_most(std::int64_t millis) const {
    std::uint64_t n = 0;
    for (int i = 0; i <= millis && i < kBuckets - 1; ++i) n += buckets_[i].load(std::memory_order_relaxed);
    return n;
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
  std::atomic<std::uint64_t> sum_ms_{0};
};

// Durations in Prometheus's default buckets (seconds), for a histogram exposition.
class DurationHistogram {
 public:
  static constexpr std::array<double, 12> kBounds{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1,   0.25,   0.5,   1,    2.5,   5};
  void add(double seconds) {
    std::size_t i = 0;
    while (i < kBounds.size() && seconds > kBounds[i]) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(static_cast<std::uint64_t>(seconds * 1e6), std::memory_order_relaxed);
  }
  // Observations <= kBounds[i]; i == kBounds.size() for all of them.
  std::uint64_t cumulative(std::size_t i) const {
    std::uint64_t n = 0;
    for (std::size_t j = 0; j <= i && j < counts_.size(); ++j) n += counts_[j].load(std::memory_order_relaxed);
    return n;
  }
  double sum_seconds() const { return static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1e6; }

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> counts_{};
  std::atomic<std::uint64_t> sum_us_{0};
};

}  // namespace pipehost::host
