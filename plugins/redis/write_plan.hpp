// Turns a batch into one atomic update: skips records at offsets already applied,
// sums the rest per key, and says which source positions move from what to what.
// Pure functions, no Redis: the sink runs the plan through the Lua script.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <pipehost/record.hpp>

namespace pipehost::redis {

// One record's key and amount, or why it cannot be counted. A string key is a view
// into the record's value (no copy): valid while the batch is not changed.
struct ReadRecord {
  std::string_view key_view;
  std::string key_text;  // a key that is not a string (an integer...), as text
  std::int64_t units = 0;
  std::string problem;  // non-empty: reject the record with this reason
  std::optional<double> rounded;  // a double amount with more decimals than scale: this one
  std::string_view key() const { return key_text.empty() ? key_view : std::string_view(key_text); }
};

class RecordReader {
 public:
  RecordReader(std::string key_field, std::string value_field, int scale);
  ReadRecord read(const Record& record);

 private:
  FieldReader key_;
  FieldReader value_;
  int scale_;
};

// The field of a partition in the positions hash: "<topic>:<partition>".
std::string position_field(std::string_view topic, std::int32_t partition);

// The fields of the partitions the batch covers (its spans), each once, in order.
std::vector<std::string> partition_fields(const Batch& batch);

// Next offset to read per partition field as Redis holds it: nullopt when Redis holds
// none. A field absent from the map is not known yet.
using PositionCache = std::unordered_map<std::string, std::optional<std::int64_t>>;

struct PartitionUpdate {
  std::string field;
  std::optional<std::int64_t> expected;  // what Redis must still hold
  std::int64_t next = 0;                 // what it holds afterwards
};

struct WritePlan {
  std::vector<std::pair<std::string, std::int64_t>> increments;  // key -> units, first-seen order
  std::vector<PartitionUpdate> partitions;  // only partitions that move forward
  std::vector<std::size_t> counted;         // records summed into increments
  std::size_t already_applied = 0;          // records below their partition's position
  // Records that would take their key's sum in the batch out of the exact range (2^53
  // units): not summed; the sink has them rejected (see RedisSumSink::refuse).
  std::vector<std::size_t> out_of_range;
  bool empty() const { return increments.empty() && partitions.empty(); }
};

// `read[i]` is record i's key and amount (the sink rejected unreadable records in
// prepare); `positions` must know every partition of the batch's spans. Positions move to
// the spans' ends, whatever records were dropped or rejected before the sink: those were
// dealt with by the host. Throws PositionMismatch when Redis holds a position before a
// span's start (Redis lost writes: the records in between must be read again), and
// puts a record that would take its key's sum out of the exact range in out_of_range.
// Records with no source position in a batch with spans (count_by's totals) are counted
// when no span is applied, skipped when all are; a batch applied in part throws
// PositionMismatch (read again from the stored positions). In a batch with no spans
// they are counted every time.
WritePlan plan_batch(const Batch& batch, const std::vector<ReadRecord>& read,
                     const PositionCache& positions);

}  // namespace pipehost::redis
