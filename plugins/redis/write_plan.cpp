#include "write_plan.hpp"

#include <algorithm>
#include <cstdlib>

#include <pipehost/status.hpp>

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
  out.key = key->to_text();
  if (out.key.empty()) {
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
  return out;
}

std::string position_field(std::string_view topic, std::int32_t partition) {
  std::string field(topic);
  field += ':';
  field += std::to_string(partition);
  return field;
}

namespace {

// Records of one partition come in runs: look a partition up once per run.
template <class F>
void for_each_partition_run(const Batch& batch, F&& on_new_partition) {
  std::string_view topic;
  std::int32_t partition = -1;
  for (const auto& r : batch.records) {
    if (r.origin.partition < 0) continue;
    if (r.origin.partition == partition && r.origin.topic == topic) continue;
    topic = r.origin.topic;
    partition = r.origin.partition;
    on_new_partition(position_field(topic, partition));
  }
}

}  // namespace

std::vector<std::string> partition_fields(const Batch& batch) {
  std::vector<std::string> fields;
  for_each_partition_run(batch, [&](std::string field) {
    if (std::find(fields.begin(), fields.end(), field) == fields.end())
      fields.push_back(std::move(field));
  });
  return fields;
}

WritePlan plan_batch(const Batch& batch, const std::vector<ReadRecord>& read,
                     const PositionCache& positions) {
  WritePlan plan;
  std::unordered_map<std::string_view, std::size_t> key_index;
  std::vector<bool> moved;
  std::string_view topic;
  std::int32_t partition = -1;
  std::size_t part = 0;
  for (std::size_t i = 0; i < batch.records.size(); ++i) {
    const Origin& origin = batch.records[i].origin;
    if (origin.partition >= 0) {
      if (origin.partition != partition || origin.topic != topic || plan.partitions.empty()) {
        topic = origin.topic;
        partition = origin.partition;
        std::string field = position_field(topic, partition);
        auto same = [&](const PartitionUpdate& p) { return p.field == field; };
        auto it = std::find_if(plan.partitions.begin(), plan.partitions.end(), same);
        part = static_cast<std::size_t>(it - plan.partitions.begin());
        if (it == plan.partitions.end()) {
          std::optional<std::int64_t> stored = positions.at(field);
          plan.partitions.push_back({std::move(field), stored, stored.value_or(0)});
          moved.push_back(false);
        }
      }
      PartitionUpdate& p = plan.partitions[part];
      if (p.expected && origin.offset < *p.expected) {
        ++plan.already_applied;
        continue;
      }
      p.next = std::max(p.next, origin.offset + 1);
      moved[part] = true;
    }
    if (!read[i].problem.empty()) {
      plan.rejected.push_back(i);
      continue;
    }
    plan.counted.push_back(i);
    auto [it, added] = key_index.try_emplace(read[i].key, plan.increments.size());
    if (added) plan.increments.emplace_back(read[i].key, 0);
    std::int64_t& sum = plan.increments[it->second].second;
    sum += read[i].units;  // each |units| < 2^53: no overflow before the check below
    if (std::llabs(sum) >= kExactLimit)
      throw FatalError("redis_sum: the batch's total for key '" + read[i].key +
                       "' leaves the exact range (2^53 units)");
  }
  std::vector<PartitionUpdate> advancing;
  for (std::size_t k = 0; k < plan.partitions.size(); ++k)
    if (moved[k]) advancing.push_back(std::move(plan.partitions[k]));
  plan.partitions = std::move(advancing);
  return plan;
}

}  // namespace pipehost::redis
