// Records a stage rejected: skipped, dead-lettered or stopping the pipeline per on_error,
// logged sparingly, and counted against the breaker (max_error_rate).
#include "runtime/task.hpp"

#include <cstdio>

#include "log.hpp"

namespace pipehost::host {
namespace {
std::string origin_text(const Record& r) {
  if (r.origin.partition < 0) return "a record";
  return "record " + std::string(r.origin.topic) + "/" + std::to_string(r.origin.partition) + "@" +
         std::to_string(r.origin.offset);
}

}  // namespace

bool Task::handle_rejections(Batch& batch, const std::string& stage, StageStats& stats) {
  if (batch.rejections.empty()) return true;
  // Records rejected again after their batch was read again (a sink found rows its store
  // refuses) were dead-lettered or skipped already: neither written nor counted twice.
  if (config_.on_error != ErrorPolicy::fail) {
    if (std::size_t again = rewound_letters_.remove_written(batch.rejections))
      log(LogLevel::info, stage + ": " + std::to_string(again) +
                              " record(s) rejected again after the batch was read again; " +
                              (config_.on_error == ErrorPolicy::dead_letter
                                   ? "already on the dead-letter topic, not written twice"
                                   : "skipped already, not counted twice"));
    if (batch.rejections.empty()) return true;
  }
  stats.records_rejected += batch.rejections.size();
  for (auto& r : batch.rejections) clip_reason(r.reason);
  last_rejection_ = stage + ": " + origin_text(batch.rejections.back().record) + ": " +
                    batch.rejections.back().reason;
  batch_rejected_ += batch.rejections.size();
  state_.records_rejected += batch.rejections.size();
  switch (config_.on_error) {
    case ErrorPolicy::fail: {
      const Rejection& r = batch.rejections.front();
      fail(stage, Status::invalid(origin_text(r.record) + " rejected: " + r.reason +
                                  " (on_error = \"fail\"; set on_error = \"skip\" or "
                                  "\"dead_letter\" to keep going)"));
      return false;
    }
    case ErrorPolicy::skip:
      log_rejections(batch.rejections, stage, "skipped");
      rewound_letters_.written_to_topic(batch.rejections);  // handled: see above
      break;
    case ErrorPolicy::dead_letter:
      for (int attempt = 0;; ++attempt) {
        Status s = dead_letter_->write(batch.rejections, stage, [this] { return stopping(); });
        if (s.is_ok()) break;
        if (s.code() == Code::cancelled) return false;  // stopping: nothing acknowledged
        if (s.code() != Code::retriable) return fail(stage, s), false;
        log(LogLevel::warn, s.message() + " (retrying)");
        if (!back_off(attempt)) return false;
      }
      state_.records_dead_lettered += batch.rejections.size();
      log_rejections(batch.rejections, stage, "dead-lettered (to " + config_.dead_letter_topic + ")");
      rewound_letters_.written_to_topic(batch.rejections);
      break;
  }
  batch.rejections.clear();
  return true;
}

// The first ten, then every thousandth: enough to see, not a flood; and it says so.
void Task::log_rejections(const std::vector<Rejection>& rejections, const std::string& stage,
                          const std::string& done_with) {
  for (const auto& r : rejections) {
    ++rejections_logged_;
    if (rejections_logged_ <= 10 || rejections_logged_ % 1000 == 0)
      log(LogLevel::warn, stage + ": " + done_with + " " + origin_text(r.record) + ": " + r.reason +
                              (rejections_logged_ == 10 ? " (further rejected records: every thousandth "
                                                          "is logged, all are counted in "
                                                          "pipehost_records_rejected_total)"
                                                        : ""));
  }
}
bool Task::check_error_rate(std::size_t records) {
  if (config_.max_error_rate >= 1.0) return true;
  error_window_.emplace_back(records, batch_rejected_);
  window_records_ += records;
  window_rejected_ += batch_rejected_;
  while (window_records_ - error_window_.front().first >= config_.error_rate_window) {
    window_records_ -= error_window_.front().first;
    window_rejected_ -= error_window_.front().second;
    error_window_.pop_front();
  }
  if (window_records_ < config_.error_rate_window) return true;
  double rate = static_cast<double>(window_rejected_) / static_cast<double>(window_records_);
  if (rate <= config_.max_error_rate) return true;
  char share[32], limit[32];
  std::snprintf(share, sizeof share, "%.0f%%", rate * 100);
  std::snprintf(limit, sizeof limit, "%g", config_.max_error_rate);
  state_.fail("pipeline '" + state_.name + "' stopped by its breaker: " + std::to_string(window_rejected_) +
              " of the last " + std::to_string(window_records_) + " records rejected (" + share +
              "; whole batches, error_rate_window = " + std::to_string(config_.error_rate_window) +
              " at least), over max_error_rate = " + limit + "; the last: " + last_rejection_);
  return false;
}

}  // namespace pipehost::host
