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
#include <string>
#include <string_view>
#include <vector>

#include <pipehost/record.hpp>

namespace pipehost::logsink {

// One record's key and amount in units, read by the sink before the batch is applied.
struct Entry {
  std::string key;
  std::int64_t units = 0;
};

class RunningTotals {
 public:
  explicit RunningTotals(int scale) : scale_(scale) {}

  // Adds the batch's entries (entries[i] belongs to batch.records[i]) and returns each
  // one's new total, or nullopt for a record at an offset this process already counted
  // (a redelivery after a rebalance). What was counted is judged against the positions
  // before the batch, so copies of one record fanned out in the batch all count. The
  // partitions' positions then move to the batch's span ends. Throws FatalError when a
  // total leaves the 64-bit range; nothing of the batch is applied then.
  std::vector<std::optional<std::int64_t>> apply(const Batch& batch,
                                                 const std::vector<Entry>& entries);

  std::optional<std::int64_t> next_offset(std::string_view topic, std::int32_t partition) const;
  std::map<std::string, std::int64_t> snapshot() const;
  std::uint64_t records() const;
  int scale() const { return scale_; }
  // Sinks sharing these totals: the last one to leave prints the summary.
  void join();
  bool leave_last();

  // One instance per pipeline name and sum (key and amount fields), for the life of the
  // process.
  static std::shared_ptr<RunningTotals> for_pipeline(const std::string& pipeline, const std::string& sum,
                                                     int scale);

 private:
  using PartitionKey = std::pair<std::string, std::int32_t>;
  // Found by (string_view, partition): no topic string built per record.
  struct PartitionLess {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      const int c = std::string_view(a.first).compare(std::string_view(b.first));
      return c < 0 || (c == 0 && a.second < b.second);
    }
  };
  int scale_;
  mutable std::mutex mutex_;
  std::map<std::string, std::int64_t, std::less<>> totals_;
  std::map<PartitionKey, std::int64_t, PartitionLess> next_offsets_;
  std::uint64_t records_ = 0;
  int members_ = 0;
};

}  // namespace pipehost::logsink
