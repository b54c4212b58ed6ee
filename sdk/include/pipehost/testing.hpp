// A harness for plugin unit tests: a Context with an in-memory Schema Registry, captured
// logs and counters, and helpers to drive one stage without a broker or sleeps.
// Not part of the ABI; include it only from tests.
#pragma once
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pipehost/sdk.hpp"

namespace pipehost::testing {

class MemorySchemaRegistry final : public SchemaRegistry {
 public:
  Status register_schema(std::string_view subject, std::string_view schema_type,
                         std::string_view schema, int& id) noexcept override {
    std::lock_guard lock(mutex_);
    for (const auto& [known_id, s] : by_id_) {
      if (s.schema == schema && s.schema_type == schema_type) {
        id = known_id;
        subjects_[std::string(subject)].push_back(id);
        return Status::ok();
      }
    }
    id = next_id_++;
    by_id_[id] = RegisteredSchema{id, std::string(schema_type), std::string(schema)};
    subjects_[std::string(subject)].push_back(id);
    return Status::ok();
  }
  Status schema_by_id(int id, RegisteredSchema& out) noexcept override {
    std::lock_guard lock(mutex_);
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return Status::invalid("schema id " + std::to_string(id) + " not found");
    out = it->second;
    return Status::ok();
  }
  std::map<std::string, std::vector<int>> subjects() const {
    std::lock_guard lock(mutex_);
    return subjects_;
  }

 private:
  mutable std::mutex mutex_;
  int next_id_ = 1;
  std::map<int, RegisteredSchema> by_id_;
  std::map<std::string, std::vector<int>> subjects_;
};

class TestContext final : public Context {
 public:
  std::string pipeline_name = "test";
  std::string stage_name = "stage";
  std::string bootstrap = "embedded";
  StringMap properties;
  std::string data_directory = ".";
  std::map<std::string, std::int64_t> resume_positions;  // "topic:partition" -> offset
  std::vector<std::string> logs;
  std::uint64_t expected_total = 0;
  bool stop_requested = false;
  MemorySchemaRegistry registry;

  std::string_view pipeline() const noexcept override { return pipeline_name; }
  std::string_view stage() const noexcept override { return stage_name; }
  int task_index() const noexcept override { return 0; }
  int task_count() const noexcept override { return 1; }
  void log(LogLevel, std::string_view message) noexcept override {
    logs.emplace_back(message);
  }
  Counter& counter(std::string_view name) noexcept override {
    return counters_[std::string(name)];
  }
  std::uint64_t counter_value(const std::string& name) { return counters_[name].value(); }
  SchemaRegistry& schema_registry() noexcept override { return registry; }
  std::string kafka_bootstrap() const noexcept override { return bootstrap; }
  StringMap kafka_properties() const noexcept override { return properties; }
  std::optional<std::int64_t> resume_position(std::string_view topic,
                                              std::int32_t partition) noexcept override {
    auto it = resume_positions.find(std::string(topic) + ":" + std::to_string(partition));
    if (it == resume_positions.end()) return std::nullopt;
    return it->second;
  }
  void set_expected_total(std::uint64_t total) noexcept override { expected_total = total; }
  bool stopping() const noexcept override { return stop_requested; }
  std::string data_dir() const noexcept override { return data_directory; }

 private:
  std::map<std::string, Counter> counters_;
};

// Builds the options of a component from its declaration, like the host does:
// defaults first, then the given values.
inline Options options_for(const std::vector<OptionSpec>& specs,
                           std::map<std::string, OptionValue> given) {
  Options o;
  for (const auto& s : specs)
    if (s.default_value) o.values[s.name] = *s.default_value;
  for (auto& [k, v] : given) o.values[k] = std::move(v);
  return o;
}

// What a sink did with one batch when driven as the host drives it.
struct SinkResult {
  std::vector<Rejection> rejections;  // from prepare and from write
  int done_calls = 0;
  Status status;  // done's status (the first one, if called more than once)
};

// Drives a synchronous sink (one that calls done before write returns) as the host
// does: spans from the records when the batch has none,
// prepare, the rejections set aside, compact, write. Exceptions from write propagate.
inline SinkResult write_batch(Sink& sink, Batch& batch) {
  SinkResult result;
  if (batch.spans.empty()) batch.spans = batch.spans_from_records();
  sink.prepare(batch);
  result.rejections = std::move(batch.rejections);
  batch.rejections.clear();
  batch.compact();
  sink.write(batch, [&result](Status s) {
    if (result.done_calls++ == 0) result.status = std::move(s);
  });
  for (auto& r : batch.rejections) result.rejections.push_back(std::move(r));
  batch.rejections.clear();
  return result;
}

}  // namespace pipehost::testing
