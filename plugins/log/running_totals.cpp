#include "running_totals.hpp"

#include <limits>

#include <pipehost/decimal.hpp>
#include <pipehost/status.hpp>

namespace pipehost::logsink {

std::vector<std::optional<std::int64_t>> RunningTotals::apply(const Batch& batch,
                                                              const std::vector<Entry>& entries) {
  constexpr std::int64_t kLimit = std::numeric_limits<std::int64_t>::max();
  std::lock_guard lock(mutex_);
  auto counted_before = [&](const Origin& o) {
    if (o.partition < 0) return false;
    auto it = next_offsets_.find(std::pair<std::string_view, std::int32_t>(o.topic, o.partition));
    return it != next_offsets_.end() && o.offset < it->second;
  };
  // Checked first, so a failing batch changes nothing.
  std::map<std::string_view, std::int64_t> after;
  std::vector<std::optional<std::int64_t>> out(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (counted_before(batch.records[i].origin)) continue;
    auto [it, fresh] = after.try_emplace(entries[i].key, 0);
    if (fresh) {
      auto known = totals_.find(entries[i].key);
      it->second = known == totals_.end() ? 0 : known->second;
    }
    auto sum = decimal::add(it->second, entries[i].units, kLimit);
    if (!sum)
      throw FatalError("the total of '" + entries[i].key + "' leaves the 64-bit range of " +
                       std::to_string(scale_) + "-decimal units");
    it->second = *sum;
    out[i] = *sum;
  }
  for (const auto& [key, total] : after) totals_[std::string(key)] = total;
  for (const auto& o : out) records_ += o.has_value();
  for (const Span& span : batch.spans) {
    auto& next = next_offsets_[{std::string(span.topic), span.partition}];
    if (span.next > next) next = span.next;
  }
  return out;
}

std::optional<std::int64_t> RunningTotals::next_offset(std::string_view topic,
                                                       std::int32_t partition) const {
  std::lock_guard lock(mutex_);
  auto it = next_offsets_.find(std::pair<std::string_view, std::int32_t>(topic, partition));
  if (it == next_offsets_.end()) return std::nullopt;
  return it->second;
}

std::map<std::string, std::int64_t> RunningTotals::snapshot() const {
  std::lock_guard lock(mutex_);
  return {totals_.begin(), totals_.end()};
}

std::uint64_t RunningTotals::records() const {
  std::lock_guard lock(mutex_);
  return records_;
}

void RunningTotals::join() {
  std::lock_guard lock(mutex_);
  ++members_;
}

bool RunningTotals::leave_last() {
  std::lock_guard lock(mutex_);
  return --members_ == 0;
}

// Kept for the life of the process, not only while a sink uses them: a pipeline that
// restarts (restart_attempts, an admin restart, a reload) resumes from the group's
// committed offsets, and its sums must go on from what was counted, not from 0. A
// different sum (another key, field or scale) is a new set of totals.
std::shared_ptr<RunningTotals> RunningTotals::for_pipeline(const std::string& pipeline, const std::string& sum,
                                                           int scale) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<RunningTotals>> by_pipeline;
  std::lock_guard lock(mutex);
  auto& totals = by_pipeline[pipeline + '\n' + sum + '\n' + std::to_string(scale)];
  if (!totals) totals = std::make_shared<RunningTotals>(scale);
  return totals;
}

}  // namespace pipehost::logsink
