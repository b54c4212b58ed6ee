// For sinks that learn only while writing that their store refuses some records (a
// table's constraint, a total out of range). Rejecting them in write would store
// positions past records the host has not dead-lettered yet. Instead the sink writes
// nothing, remembers them here and throws PositionMismatch: the host has the source read
// the batch again, and prepare rejects the remembered records (reject_in) before
// anything is written. A batch read again may hold more records than the first read,
// and so another refused one: each pass adds what it finds, so it ends.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <tuple>

#include "pipehost/record.hpp"

namespace pipehost {

class RefusedRecords {
 public:
  // Remembers a record by its source position. False when it has none (it cannot be
  // read again): use remember_key, or fail.
  bool remember(const Record& record, std::string reason) {
    const Origin& o = record.origin;
    if (o.partition < 0 || o.offset < 0) return false;
    by_position_[{std::string(o.topic), o.partition, o.offset}] = std::move(reason);
    return true;
  }

  // Remembers a record a stage made (count_by's counts have no source position) by a
  // key of the sink's choosing, e.g. its row's primary key.
  void remember_key(std::string key, std::string reason) { by_key_[std::move(key)] = std::move(reason); }

  // Remembers a refused record as a sink reports it: by its position, else by
  // `key_of(record)` (a row a stage made; the reason then names the key). `what` says
  // who refused it ("postgres: table t refused the row"), `detail` the store's message.
  void remember_row(const Record& record, const std::string& what, const std::string& detail,
                    const std::function<std::string(const Record&)>& key_of) {
    if (remember(record, what + ": " + detail)) return;
    std::string key = key_of(record);
    std::string reason = what + " with key " + key + ": " + detail;
    remember_key(std::move(key), std::move(reason));
  }

  bool empty() const { return by_position_.empty() && by_key_.empty(); }

  // Rejects the batch's remembered records (Batch::reject). `key_of` gives the key of a
  // record without a position, for sinks that remember by key.
  void reject_in(Batch& batch, const std::function<std::string(const Record&)>& key_of = {}) const {
    if (empty()) return;
    for (std::size_t i = 0; i < batch.records.size(); ++i) {
      const Record& r = batch.records[i];
      const std::string* reason = nullptr;
      if (r.origin.partition >= 0 && r.origin.offset >= 0) {
        auto it = by_position_.find(PositionView(r.origin.topic, r.origin.partition, r.origin.offset));
        if (it != by_position_.end()) reason = &it->second;
      } else if (key_of && !by_key_.empty()) {
        auto it = by_key_.find(key_of(r));
        if (it != by_key_.end()) reason = &it->second;
      }
      if (reason) batch.reject(i, *reason);
    }
  }

  // After a batch is written: forgets the records its spans passed (their positions are
  // stored now), and every key. Records further on are kept for the read that reaches them.
  void written(const Batch& batch) {
    by_key_.clear();
    for (const Span& s : batch.spans) {
      const std::string topic(s.topic);
      by_position_.erase(by_position_.lower_bound({topic, s.partition, std::numeric_limits<std::int64_t>::min()}),
                         by_position_.lower_bound({topic, s.partition, s.next}));
    }
  }

 private:
  using PositionView = std::tuple<std::string_view, std::int32_t, std::int64_t>;
  // Found by a view: a lookup per record while any is remembered builds no string.
  struct PositionLess {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return PositionView(std::get<0>(a), std::get<1>(a), std::get<2>(a)) <
             PositionView(std::get<0>(b), std::get<1>(b), std::get<2>(b));
    }
  };
  std::map<std::tuple<std::string, std::int32_t, std::int64_t>, std::string, PositionLess> by_position_;
  std::map<std::string, std::string> by_key_;
};

}  // namespace pipehost
