// Live samples of the records passing a stage, for `pipehost tap` and
// GET /pipelines/NAME/tap: each open tap takes copies (as JSON lines) of the next records
// that leave its stage, up to its limit. With no tap open a task pays one relaxed load
// per stage and batch.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pipehost/record.hpp"

namespace pipehost::host {

class TapPoint {
 public:
  struct Tap {
    std::string stage;
    std::size_t remaining = 0;  // records still wanted
    std::deque<std::string> lines;
    std::size_t unread_bytes = 0;  // of `lines`: past kMostUnreadBytes, records go by unsampled
  };
  // A client reading slower than records pass (large records, a high limit) would have the
  // lines pile up in memory: 100,000 records of 10 KB held over 1 GB.
  static constexpr std::size_t kMostUnreadBytes = 8 << 20;

  std::shared_ptr<Tap> open(std::string stage, std::size_t limit);
  void close(const std::shared_ptr<Tap>& tap);
  bool active() const { return open_taps_.load(std::memory_order_relaxed) > 0; }
  // Called by a task with the records that leave `stage`.
  void offer(const std::string& stage, int task, const Batch& batch);
  // Moves the lines taken so far into `out`, waiting up to `wait` for some; false once
  // the tap has all it wanted and nothing is left to hand over.
  bool take(Tap& tap, std::vector<std::string>& out, std::chrono::milliseconds wait);

  // One record as a JSON object: stage, task, origin, timestamp, key, headers, the
  // decoded value when there is one and the payload (a string when it is UTF-8,
  // "payload_base64" otherwise).
  static std::string record_json(const std::string& stage, int task, const Record& record);

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::shared_ptr<Tap>> taps_;
  std::atomic<int> open_taps_{0};
};

}  // namespace pipehost::host
