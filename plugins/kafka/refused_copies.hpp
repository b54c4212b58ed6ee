// Records the broker or the producer refused for good, by source position and destination
// topic (a router's copies of one record to several topics: only the refused copy is
// rejected when the batch is read again). See pipehost/refused.hpp for the pattern.
//
// Refused: rejected by prepare when the batch is read again. Suspect (at least once):
// refused in a produce request of several records, which the broker refuses whole (too
// large, not authorized), so which of them is at fault is unknown: when read again, each
// is produced alone, and the one refused alone is refused.
//
// Filled from librdkafka's delivery-report thread and read by the task's: locked.
#pragma once
#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <pipehost/sdk.hpp>

namespace pipehost::kafka {

// Delivery errors a retry of the same record meets again.
bool refused_for_good(rd_kafka_resp_err_t err);

class RefusedCopies {
 public:
  explicit RefusedCopies(std::string default_topic) : default_topic_(std::move(default_topic)) {}

  // False when the record has no source position (it cannot be read again).
  bool remember(const Origin& origin, std::string_view destination, std::string reason) {
    return remember(origin.topic, origin.partition, origin.offset, destination, std::move(reason));
  }
  bool remember(std::string_view topic, std::int32_t partition, std::int64_t offset,
                std::string_view destination, std::string reason) {
    if (partition < 0 || offset < 0) return false;
    std::lock_guard lock(mutex_);
    auto k = key(topic, partition, offset, destination);
    suspects_.erase(k);
    refused_[std::move(k)] = std::move(reason);
    return true;
  }
  void suspect(std::string_view topic, std::int32_t partition, std::int64_t offset,
               std::string_view destination) {
    if (partition < 0 || offset < 0) return;
    std::lock_guard lock(mutex_);
    suspects_.insert(key(topic, partition, offset, destination));
  }
  bool any_suspects() const {
    std::lock_guard lock(mutex_);
    return !suspects_.empty();
  }
  bool is_suspect(const Record& r) const {
    std::lock_guard lock(mutex_);
    return !suspects_.empty() && r.origin.partition >= 0 &&
           suspects_.count(view(r.origin.topic, r.origin.partition, r.origin.offset, r.destination_topic)) > 0;
  }

  void reject_in(Batch& batch) const {
    std::lock_guard lock(mutex_);
    if (refused_.empty()) return;
    for (std::size_t i = 0; i < batch.records.size(); ++i) {
      const Record& r = batch.records[i];
      if (r.dropped || r.origin.partition < 0) continue;
      auto it = refused_.find(view(r.origin.topic, r.origin.partition, r.origin.offset, r.destination_topic));
      if (it != refused_.end()) batch.reject(i, it->second);
    }
  }

  // A batch is acknowledged: the records it covered, [from, next) per partition, were
  // written or rejected, and are forgotten. Only its own: a batch written after a refused
  // one may be acknowledged before the refused one is read again.
  struct Passed {
    std::string topic;
    std::int32_t partition;
    std::int64_t from;
    std::int64_t next;
  };
  void written(const std::vector<Passed>& spans) {
    std::lock_guard lock(mutex_);
    if (refused_.empty() && suspects_.empty()) return;
    for (const Passed& s : spans) {
      auto passed = [&](const Key& k) {
        const auto& [topic, partition, offset, destination] = k;
        return topic == s.topic && partition == s.partition && offset >= s.from && offset < s.next;
      };
      std::erase_if(refused_, [&](const auto& entry) { return passed(entry.first); });
      std::erase_if(suspects_, passed);
    }
  }
  // exactly_once: a transaction committed. Batches commit in order, so everything before
  // its spans' ends is done with.
  void written(const Batch& batch) {
    std::vector<Passed> spans;
    for (const Span& s : batch.spans)
      spans.push_back({std::string(s.topic), s.partition, std::numeric_limits<std::int64_t>::min(), s.next});
    written(spans);
  }

 private:
  using Key = std::tuple<std::string, std::int32_t, std::int64_t, std::string>;
  using KeyView = std::tuple<std::string_view, std::int32_t, std::int64_t, std::string_view>;
  // Keys are found by views: a lookup per record while any entry is kept builds no strings.
  struct KeyLess {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return KeyView(std::get<0>(a), std::get<1>(a), std::get<2>(a), std::get<3>(a)) <
             KeyView(std::get<0>(b), std::get<1>(b), std::get<2>(b), std::get<3>(b));
    }
  };
  KeyView view(std::string_view topic, std::int32_t partition, std::int64_t offset,
               std::string_view destination) const {
    return {topic, partition, offset, destination.empty() ? std::string_view(default_topic_) : destination};
  }
  Key key(std::string_view topic, std::int32_t partition, std::int64_t offset, std::string_view destination) const {
    const KeyView v = view(topic, partition, offset, destination);
    return {std::string(std::get<0>(v)), partition, offset, std::string(std::get<3>(v))};
  }
  std::string default_topic_;
  mutable std::mutex mutex_;
  std::map<Key, std::string, KeyLess> refused_;
  std::set<Key, KeyLess> suspects_;
};

}  // namespace pipehost::kafka
