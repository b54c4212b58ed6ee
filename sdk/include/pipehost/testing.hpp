// A harness for plugin unit tests: a Context with an in-memory Schema Registry, captured
// logs and counters, and helpers to drive one stage without a broker or sleeps.
// Not part of the ABI; include it only from tests.
#pragma once
#include <algorithm>
#include <deque>
#include <functional>
#include <stdexcept>
#include <map>
#include <memory>
#include <ostream>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "pipehost/detail/validate.hpp"
#include "pipehost/sdk.hpp"

namespace pipehost {
// Values print readably in test failures.
inline std::ostream& operator<<(std::ostream& os, const Value& v) {
  if (const auto* l = v.as<List>()) {
    os << "[";
    for (std::size_t i = 0; i < l->size(); ++i) os << (i ? ", " : "") << (*l)[i];
    return os << "]";
  }
  if (const auto* s = v.as<Struct>()) {
    os << "{";
    for (std::size_t i = 0; i < s->fields.size(); ++i)
      os << (i ? ", " : "") << (s->schema ? s->schema->names()[i] : "?") << ": " << s->fields[i];
    return os << "}";
  }
  if (v.is<std::string>()) return os << '"' << v.to_text() << '"';
  if (v.is<Timestamp>()) return os << "ts(" << v.to_text() << ")";
  return os << v.to_text();
}
}  // namespace pipehost

namespace pipehost::testing {

class MemorySchemaRegistry final : public SchemaRegistry {
 public:
  Status register_schema(std::string_view subject, std::string_view schema_type,
                         std::string_view schema, int& id) noexcept override {
    int version = 0;
    return register_schema(subject, schema_type, schema, {}, id, version);
  }
  // As a producer registers a schema that imports or names others (each registered first).
  Status register_schema(std::string_view subject, std::string_view schema_type,
                         std::string_view schema, std::vector<SchemaReference> references,
                         int& id) noexcept {
    int version = 0;
    return register_schema(subject, schema_type, schema, references, id, version);
  }
  Status register_schema(std::string_view subject, std::string_view schema_type,
                         std::string_view schema, const std::vector<SchemaReference>& references,
                         int& id, int& version) noexcept override {
    std::lock_guard lock(mutex_);
    id = 0;
    for (const auto& [known_id, s] : by_id_)
      if (s.schema == schema && s.schema_type == schema_type && s.references == references)
        id = known_id;
    if (id == 0) {
      id = next_id_++;
      by_id_[id] = RegisteredSchema{id, std::string(schema_type), std::string(schema), references};
    }
    auto& versions = subjects_[std::string(subject)];
    auto at = std::find(versions.begin(), versions.end(), id);
    if (at == versions.end()) at = versions.insert(versions.end(), id);
    version = static_cast<int>(at - versions.begin()) + 1;
    return Status::ok();
  }
  Status schema_by_id(int id, RegisteredSchema& out) noexcept override {
    std::lock_guard lock(mutex_);
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return Status::invalid("schema id " + std::to_string(id) + " not found");
    out = it->second;
    return Status::ok();
  }
  Status latest_schema(std::string_view subject, RegisteredSchema& out) noexcept override {
    std::lock_guard lock(mutex_);
    auto it = subjects_.find(std::string(subject));
    if (it == subjects_.end() || it->second.empty())
      return Status::invalid("subject " + std::string(subject) + " has no schema");
    out = by_id_.at(it->second.back());
    return Status::ok();
  }
  Status schema_version(std::string_view subject, int version,
                        RegisteredSchema& out) noexcept override {
    std::lock_guard lock(mutex_);
    auto it = subjects_.find(std::string(subject));
    if (it == subjects_.end() || version < 1 || static_cast<std::size_t>(version) > it->second.size())
      return Status::invalid("subject " + std::string(subject) + " has no version " +
                             std::to_string(version));
    out = by_id_.at(it->second[static_cast<std::size_t>(version) - 1]);
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
  std::vector<Position> acknowledged;  // what take_acknowledged hands over (then cleared)
  std::vector<Position> take_acknowledged() noexcept override { return std::exchange(acknowledged, {}); }
  void set_expected_total(std::uint64_t total) noexcept override { expected_total = total; }
  bool stopping() const noexcept override { return stop_requested; }
  std::string data_dir() const noexcept override { return data_directory; }
  Gauge& gauge(std::string_view name, const MetricLabels& labels) noexcept override {
    std::string key(name);
    for (const auto& [k, v] : labels) key += "," + k + "=" + v;
    return gauges_[key];
  }
  // "name" or "name,label=value,..." in the order the stage gave the labels.
  const Gauge* find_gauge(const std::string& key) const {
    auto it = gauges_.find(key);
    return it == gauges_.end() ? nullptr : &it->second;
  }
  bool ready = true;
  void set_ready(bool r) noexcept override { ready = r; }
  bool reading_positions = false;  // what reading_positions_only() answers
  bool reading_positions_only() const noexcept override { return reading_positions; }

 private:
  std::map<std::string, Counter> counters_;
  std::map<std::string, Gauge> gauges_;
};

// Collects what a config check reports.
class TestChecker final : public Checker {
 public:
  TestChecker(Context& context, bool connect) : context_(context), connect_(connect) {}
  void problem(std::string_view option, std::string_view message) noexcept override {
    problems.push_back((option.empty() ? "" : "option '" + std::string(option) + "': ") +
                       std::string(message));
  }
  void unreachable(std::string_view message) noexcept override {
    unreachable_services.emplace_back(message);
  }
  bool connect() const noexcept override { return connect_; }
  Context& context() noexcept override { return context_; }
  std::vector<std::string> problems;
  std::vector<std::string> unreachable_services;

 private:
  Context& context_;
  bool connect_;
};

// Validates given option values against a declaration as the host does (unknown
// options, types, allowed values, ranges, patterns, required ones) and adds the
// defaults. Problems are returned, one line each.
inline std::vector<std::string> validate_options(const std::vector<OptionSpec>& specs,
                                                 std::map<std::string, OptionValue> given,
                                                 Options& out) {
  std::vector<std::string> problems;
  for (auto& [name, value] : given) {
    const OptionSpec* spec = nullptr;
    for (const auto& s : specs)
      if (s.name == name) spec = &s;
    if (!spec) {
      problems.push_back("unknown option '" + name + "'");
      continue;
    }
    if (!detail::has_type(value, spec->type)) {
      problems.push_back("option '" + name + "' must be a " + std::string(option_type_name(spec->type)));
      continue;
    }
    if (std::string p = detail::value_problem(*spec, value); !p.empty()) {
      problems.push_back(p);
      continue;
    }
    out.values[name] = std::move(value);
  }
  for (const auto& s : specs) {
    if (out.has(s.name) || given.count(s.name)) continue;
    if (s.default_value) out.values[s.name] = *s.default_value;
    else if (s.required) problems.push_back("option '" + s.name + "' is required");
  }
  return problems;
}

// Builds the options of a component from its declaration, like the host does:
// defaults first, then the given values (not validated: see validate_options).
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
// does: spans from the records when the batch has none, prepare, the rejections set
// aside, compact, write. Exceptions from write propagate.
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

// A component built through its declaration from validated options, with a context of
// the caller's (several components may share one). Problems throw std::invalid_argument.
template <class T>
std::unique_ptr<T> make(std::map<std::string, OptionValue> given, Context& context) {
  using Config = typename T::Config;
  OptionList<Config> list;
  Config::declare(list);
  Options options;
  std::vector<std::string> problems = validate_options(list.specs(), std::move(given), options);
  if (!problems.empty()) {
    std::string all;
    for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
    throw std::invalid_argument(all);
  }
  Config config{};
  list.fill(config, options);
  return std::make_unique<T>(config, context);
}

// One component built the way the host builds it: the given options validated against
// its declaration (a problem throws std::invalid_argument listing them all), its config
// struct filled through the declaration, its check() run, then T(config, context).
// Exceptions from the component propagate, so tests can CHECK_THROWS them.
//
//   StageHarness<RedisSumSink> h({{"url", server.url()}});
//   auto result = h.write(batch);
template <class T>
class StageHarness {
 public:
  using Config = typename T::Config;

  explicit StageHarness(std::map<std::string, OptionValue> given = {},
                        const std::function<void(TestContext&)>& setup = {}) {
    if (setup) setup(context);
    OptionList<Config> list;
    Config::declare(list);
    std::vector<std::string> problems = validate_options(list.specs(), std::move(given), options);
    list.fill(config, options);
    if constexpr (requires(const Config& c, Checker& k) { c.check(k); }) {
      TestChecker checker(context, false);
      config.check(checker);
      problems.insert(problems.end(), checker.problems.begin(), checker.problems.end());
    }
    if (!problems.empty()) {
      std::string all;
      for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
      throw std::invalid_argument(all);
    }
    component_ = std::make_unique<T>(config, context);
  }

  // The problems `pipehost validate` would report for these options (empty: none).
  static std::vector<std::string> problems(std::map<std::string, OptionValue> given) {
    TestContext context;
    OptionList<Config> list;
    Config::declare(list);
    Options options;
    std::vector<std::string> out = validate_options(list.specs(), std::move(given), options);
    if (!out.empty()) return out;
    Config config{};
    list.fill(config, options);
    if constexpr (requires(const Config& c, Checker& k) { c.check(k); }) {
      TestChecker checker(context, false);
      config.check(checker);
      out = checker.problems;
    }
    return out;
  }

  T& component() { return *component_; }
  T* operator->() { return component_.get(); }

  // A sink: prepare, rejections set aside, write (synchronous sinks).
  SinkResult write(Batch& batch) { return write_batch(*component_, batch); }

  // A transform: process, then the rejections taken out and the batch compacted.
  std::vector<Rejection> process(Batch& batch) {
    component_->process(batch);
    std::vector<Rejection> rejected = std::move(batch.rejections);
    batch.rejections.clear();
    batch.compact();
    return rejected;
  }

  TestContext context;  // declared before the component, which may keep a reference
  Options options;      // what the host would pass: validated values and defaults
  Config config{};

 private:
  std::unique_ptr<T> component_;
};

}  // namespace pipehost::testing
