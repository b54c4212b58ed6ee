// What the host gives every stage: logging, metrics, the Schema Registry, the Kafka
// bootstrap and a way to ask the pipeline's sink where to resume. Implemented by the
// host; every call is noexcept so nothing is thrown across the boundary.
#pragma once
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pipehost/abi.hpp"
#include "pipehost/options.hpp"
#include "pipehost/record.hpp"
#include "pipehost/status.hpp"

namespace pipehost {

enum class LogLevel { debug, info, warn, error };

class Counter {
 public:
  void add(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down (a consumer's lag, a queue's depth), shown in the host's
// metrics while set; clear() removes the series (e.g. a partition this task lost).
class Gauge {
 public:
  void set(std::int64_t v) noexcept {
    value_.store(v, std::memory_order_relaxed);
    present_.store(true, std::memory_order_relaxed);
  }
  void clear() noexcept { present_.store(false, std::memory_order_relaxed); }
  bool present() const noexcept { return present_.load(std::memory_order_relaxed); }
  std::int64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
  std::atomic<bool> present_{false};
};

// Label names and values of one metric series, e.g. {{"topic", "t"}, {"partition", "0"}}.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// A schema another one uses, as Confluent's "references" name it: a protobuf import
// ("acme/money.proto"), an Avro named type ("acme.Money"), registered under subject at
// version.
struct SchemaReference {
  std::string name;
  std::string subject;
  int version = 0;
  bool operator==(const SchemaReference&) const = default;
};

struct RegisteredSchema {
  int id = 0;
  std::string schema_type;  // "PROTOBUF", "AVRO" or "JSON" (Confluent's names)
  std::string schema;       // the schema text as registered
  std::vector<SchemaReference> references;  // what it uses; each is fetched with schema_version
};

// The Confluent Schema Registry API, served by a real registry or the embedded one.
class PIPEHOST_EXPORT SchemaRegistry {
 public:
  virtual ~SchemaRegistry() = default;
  // POST /subjects/{subject}/versions: the id of the schema, registering it if new.
  virtual Status register_schema(std::string_view subject, std::string_view schema_type,
                                 std::string_view schema, int& id) noexcept = 0;
  // The same for a schema that imports or names others (each registered first), and the
  // version the subject holds it as (POST /subjects/{subject}): what a reference to it
  // names.
  virtual Status register_schema(std::string_view subject, std::string_view schema_type,
                                 std::string_view schema,
                                 const std::vector<SchemaReference>& references, int& id,
                                 int& version) noexcept = 0;
  // GET /schemas/ids/{id}
  virtual Status schema_by_id(int id, RegisteredSchema& out) noexcept = 0;
  // GET /subjects/{subject}/versions/latest; invalid when the subject has no version.
  virtual Status latest_schema(std::string_view subject, RegisteredSchema& out) noexcept = 0;
  // GET /subjects/{subject}/versions/{version}: a referenced schema; invalid when the
  // registry has no such version.
  virtual Status schema_version(std::string_view subject, int version,
                                RegisteredSchema& out) noexcept = 0;
};

class PIPEHOST_EXPORT Context {
 public:
  virtual ~Context() = default;

  virtual std::string_view pipeline() const noexcept = 0;
  virtual std::string_view stage() const noexcept = 0;  // e.g. "source", "transforms[0]", "sink"
  virtual int task_index() const noexcept = 0;          // 0 .. task_count()-1
  virtual int task_count() const noexcept = 0;

  // Logged with the pipeline and stage as prefix.
  virtual void log(LogLevel level, std::string_view message) noexcept = 0;
  void debug(std::string_view m) noexcept { log(LogLevel::debug, m); }
  void info(std::string_view m) noexcept { log(LogLevel::info, m); }
  void warn(std::string_view m) noexcept { log(LogLevel::warn, m); }
  void error(std::string_view m) noexcept { log(LogLevel::error, m); }

  // A counter in the host's metrics, exposed as pipehost_plugin_<name>_total{pipeline,
  // stage}, alive as long as the process; the tasks of a stage share it.
  virtual Counter& counter(std::string_view name) noexcept = 0;

  virtual SchemaRegistry& schema_registry() noexcept = 0;

  // The Kafka bootstrap servers with "embedded" already resolved, and the extra
  // librdkafka properties configured for the whole file ([kafka.properties]).
  virtual std::string kafka_bootstrap() const noexcept = 0;
  virtual StringMap kafka_properties() const noexcept = 0;

  // Where this task's sink says a partition should resume (the next offset to read),
  // when the sink stores positions with its data; nullopt when it does not.
  virtual std::optional<std::int64_t> resume_position(std::string_view topic,
                                                      std::int32_t partition) noexcept = 0;

  // For a source: the positions the sink has acknowledged since the last Source::commit,
  // handed over now as if commit had been called with them (the host does not pass them
  // again). A source about to lose partitions (a rebalance) takes and commits them first,
  // so the next owner does not read again what was already acknowledged: the host first
  // waits, 5 s at most, for the batches an asynchronous sink still has in flight. Empty
  // for other stages.
  virtual std::vector<Position> take_acknowledged() noexcept = 0;

  // A bounded source tells how many records it will produce, for progress display.
  virtual void set_expected_total(std::uint64_t total) noexcept = 0;

  // True once the host has been asked to stop (SIGINT/SIGTERM or a failure).
  virtual bool stopping() const noexcept = 0;

  // The directory holding the host's shared data (e.g. compiled schema descriptor sets).
  virtual std::string data_dir() const noexcept = 0;

  // A gauge exposed as pipehost_plugin_<name>{pipeline, stage, <labels>}; the same name
  // and labels give the same gauge, to every task of the stage (give a label of your own,
  // e.g. the partition, to keep the tasks' values apart).
  virtual Gauge& gauge(std::string_view name, const MetricLabels& labels) noexcept = 0;

  // For a source or sink whose readiness the host cannot see by itself (a consumer
  // waiting for its group to assign partitions): false until it can do its work. The
  // host's /ready answers 503 while any stage of a running pipeline says false. Stages
  // that never call it are ready once started.
  virtual void set_ready(bool ready) noexcept = 0;

  // True for a sink built by `pipehost positions` only to read its stored positions
  // (from a second process, while the pipeline may be running): open what holds them
  // without creating, migrating or writing anything, and answer nullopt where nothing is
  // stored yet (no file, no table). Only sinks whose ComponentSpec says stores_positions
  // are built so.
  virtual bool reading_positions_only() const noexcept { return false; }
};

// What a component's config check reports to. A config struct may define
//   void check(pipehost::Checker& c) const;
// which the host runs at `pipehost validate` and before `run` starts anything.
class PIPEHOST_EXPORT Checker {
 public:
  virtual ~Checker() = default;
  // A problem with the stage's configuration, shown at the option's place in the file
  // (option "" : the stage itself). Exit code 2.
  virtual void problem(std::string_view option, std::string_view message) noexcept = 0;
  // A service the stage needs cannot be used (unreachable, refuses us, lacks a schema).
  // Exit code 3 at run; at validate only with --connect.
  virtual void unreachable(std::string_view message) noexcept = 0;
  // True when checks that need services should run: `pipehost validate --connect`, and
  // always before `run`.
  virtual bool connect() const noexcept = 0;
  // The pipeline's context: its name, data_dir, the schema registry, Kafka bootstrap. A
  // stage that uses the schema registry asks for it here (context().schema_registry()),
  // so that `pipehost validate --connect` checks the registry answers.
  virtual Context& context() noexcept = 0;
};

}  // namespace pipehost
