#include "write_plan.hpp"

#include <algorithm>
#include <cstdlib>

#include <pipehost/status.hpp>
#include <pipehost/stored_positions.hpp>

#include "amounts.hpp"

namespace pipehost::redis {

RecordReader::RecordReader(std::string key_field, std::string value_field, int scale)
    : key_(std::move(key_field)), value_(std::move(value_field)), scale_(scale) {}

ReadRecord RecordReader::read(const Record& record) {
  ReadRecord out;
  if (!record.value.is<Struct>()) {
    out.problem = "the record has no decoded struct value to read field '" + key_.name() +
                  "' from (is a decoder configured before the sink?)";
    return out;
  }
  const Value* key = key_.read(record.value);
  if (!key) {
    out.problem = "key field '" + key_.name() + "' is missing";
    return out;
  }
  if (key->is_null() || key->is<List>() || key->is<Struct>()) {
    out.problem = "key field '" + key_.name() + "' is " + (key->is_null() ? "null" : "not a scalar");
    return out;
  }
  if (const auto* text = key->as<std::string>()) out.key_view = *text;
  else out.key_text = key->to_text();
  if (out.key().empty()) {
    out.problem = "key field '" + key_.name() + "' is empty";
    return out;
  }
  const Value* amount = value_.read(record.value);
  if (!amount) {
    out.problem = "value field '" + value_.name() + "' is missing";
    return out;
  }
  std::string problem;
  if (auto units = to_units(*amount, scale_, problem)) out.units = *units;
  else out.problem = "value field '" + value_.name() + "' " + problem;
  if (const double* d = amount->as<double>(); d && out.problem.empty() && decimal::rounds(*d, scale_))
    out.rounded = *d;
  return out;
}

std::string position_field(std::string_view topic, std::int32_t partition) {
  std::string field(topic);
  field += ':';
  field += std::to_string(partition);
  return field;
}

std::vector<std::string> partition_fields(const Batch& batch) {
  std::vector<std::string> fields;
  for (const auto& span : batch.spans) {
    std::string field = position_field(span.topic, span.partition);
    if (std::find(fields.begin(), fields.end(), field) == fields.end())
      fields.push_back(std::move(field));
  }
  return fields;
}

WritePlan plan_batch(const Batch& batch, const std::vector<ReadRecord>& read,
                     const PositionCache& positions) {
  WritePlan plan;
  // Where each span's partition stands in Redis: records below it are already applied.
  struct Partition {
    std::string_view topic;
    std::int32_t partition;
    std::optional<std::int64_t> stored;
  };
  std::vector<Partition> partitions;
  for (const Span& span : batch.spans) {
    std::string field = position_field(span.topic, span.partition);
    const std::optional<std::int64_t> stored = positions.at(field);
    if (stored && span.from >= 0 && *stored < span.from)
      throw PositionMismatch("redis_sum: Redis holds position " + std::to_string(*stored) +
                             " for " + field + " but this batch continues from " +
                             std::to_string(span.from) +
                             ": Redis lost writes (a restart without fsync, a failover to a "
                             "lagging replica)");
    partitions.push_back({span.topic, span.partition, stored});
    if (!stored || span.next > *stored) plan.partitions.push_back({std::move(field), stored, span.next});
  }
  std::unordered_map<std::string_view, std::size_t> key_index;
  std::size_t last = 0;  // records of one partition come in runs: look it up once per run
  // Records with no source position (count_by's totals) fold the whole batch: counted
  // only when no span is applied, skipped when all are (asked at the first of them).
  std::optional<bool> folded_applied;
  for (std::size_t i = 0; i < batch.records.size(); ++i) {
    const Origin& origin = batch.records[i].origin;
    if (origin.partition < 0 && !batch.spans.empty()) {
      auto stored = [&](const Span& s) { return positions.at(position_field(s.topic, s.partition)); };
      if (!folded_applied) folded_applied = applied_whole(batch, stored, "redis_sum: Redis");
      if (*folded_applied) {
        ++plan.already_applied;
        continue;
      }
    } else if (origin.partition >= 0) {
      if (last >= partitions.size() || partitions[last].partition != origin.partition ||
          partitions[last].topic != origin.topic) {
        last = static_cast<std::size_t>(
            std::find_if(partitions.begin(), partitions.end(),
                         [&](const Partition& p) {
                           return p.partition == origin.partition && p.topic == origin.topic;
                         }) -
            partitions.begin());
      }
      if (last < partitions.size() && partitions[last].stored &&
          origin.offset < *partitions[last].stored) {
        ++plan.already_applied;
        continue;
      }
    }
    auto [it, added] = key_index.try_emplace(read[i].key(), plan.increments.size());
    if (added) plan.increments.emplace_back(std::string(read[i].key()), 0);
    std::int64_t& sum = plan.increments[it->second].second;
    // |sum| and |units| are below 2^53: their sum cannot overflow.
    if (std::llabs(sum + read[i].units) >= kExactLimit) {
      plan.out_of_range.push_back(i);
      continue;
    }
    sum += read[i].units;
    plan.counted.push_back(i);
  }
  return plan;
}

}  // namespace pipehost::redis
