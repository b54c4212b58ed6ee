#include "config/stage_checks.hpp"

#include <map>

namespace pipehost::host {
namespace {

class NoRegistry final : public SchemaRegistry {
 public:
  Status register_schema(std::string_view, std::string_view, std::string_view, int&) noexcept override {
    return Status::retriable("the schema registry is not contacted without --connect");
  }
  Status register_schema(std::string_view, std::string_view, std::string_view,
                         const std::vector<SchemaReference>&, int&, int&) noexcept override {
    return Status::retriable("the schema registry is not contacted without --connect");
  }
  Status schema_by_id(int, RegisteredSchema&) noexcept override {
    return Status::retriable("the schema registry is not contacted without --connect");
  }
  Status latest_schema(std::string_view, RegisteredSchema&) noexcept override {
    return Status::retriable("the schema registry is not contacted without --connect");
  }
  Status schema_version(std::string_view, int, RegisteredSchema&) noexcept override {
    return Status::retriable("the schema registry is not contacted without --connect");
  }
};

// What a stage's check sees of the host: names, data, and the services if connecting.
class CheckContext final : public Context {
 public:
  CheckContext(const PipelineConfig& pipeline, const StageConfig& stage, const CheckServices& services)
      : pipeline_(pipeline), stage_(stage), services_(services) {}
  std::string_view pipeline() const noexcept override { return pipeline_.name; }
  std::string_view stage() const noexcept override { return stage_.label; }
  int task_index() const noexcept override { return 0; }
  int task_count() const noexcept override { return pipeline_.tasks; }
  void log(LogLevel, std::string_view) noexcept override {}
  Counter& counter(std::string_view name) noexcept override { return counters_[std::string(name)]; }
  SchemaRegistry& schema_registry() noexcept override {
    services_.registry_asked = true;
    return services_.registry ? *services_.registry : no_registry_;
  }
  std::string kafka_bootstrap() const noexcept override { return services_.kafka_bootstrap; }
  StringMap kafka_properties() const noexcept override { return services_.kafka_properties; }
  std::optional<std::int64_t> resume_position(std::string_view, std::int32_t) noexcept override {
    return std::nullopt;
  }
  std::vector<Position> take_acknowledged() noexcept override { return {}; }
  void set_expected_total(std::uint64_t) noexcept override {}
  bool stopping() const noexcept override { return false; }
  std::string data_dir() const noexcept override { return services_.data_dir; }
  Gauge& gauge(std::string_view, const MetricLabels&) noexcept override { return gauge_; }
  void set_ready(bool) noexcept override {}

 private:
  Gauge gauge_;
  const PipelineConfig& pipeline_;
  const StageConfig& stage_;
  const CheckServices& services_;
  std::map<std::string, Counter> counters_;
  NoRegistry no_registry_;
};

class HostChecker final : public Checker {
 public:
  HostChecker(const PipelineConfig& pipeline, const StageConfig& stage, Context& context,
              bool connect, Diagnostics& diagnostics, std::vector<std::string>& unreachable)
      : pipeline_(pipeline), stage_(stage), context_(context), connect_(connect),
        diagnostics_(diagnostics), unreachable_(unreachable) {}

  void problem(std::string_view option, std::string_view message) noexcept override {
    try {
      Location where = stage_.where;
      std::string text(message);
      if (!option.empty()) {
        text = "option '" + std::string(option) + "': " + text;
        if (stage_.table)
          if (const toml::node* node = stage_.table->get(option))
            if (Location at = location_of(node->source()); !at.file.empty()) where = at;
      }
      diagnostics_.add(where, pipeline_.name, stage_.label, text);
    } catch (...) {
    }
  }
  void unreachable(std::string_view message) noexcept override {
    try {
      unreachable_.push_back((pipeline_.name.empty() ? "" : "pipeline '" + pipeline_.name + "', ") + stage_.label +
                             " (" + stage_.plugin + "): " + std::string(message));
    } catch (...) {
    }
  }
  bool connect() const noexcept override { return connect_; }
  Context& context() noexcept override { return context_; }

 private:
  const PipelineConfig& pipeline_;
  const StageConfig& stage_;
  Context& context_;
  bool connect_;
  Diagnostics& diagnostics_;
  std::vector<std::string>& unreachable_;
};

}  // namespace

void check_stages(const Config& config, const CheckServices& services, bool connect,
                  Diagnostics& diagnostics, std::vector<std::string>& unreachable) {
  auto check = [&](const PipelineConfig& pipeline, const StageConfig& stage) {
    if (!stage.component || !stage.component->check) return;
    // A stage whose options were refused has its check run on defaults in their place,
    // which says the same again in other words ("needs option 'path'", then "'path' is
    // empty"): skipped.
    for (const Diagnostic& d : diagnostics.items())
      if (d.pipeline == pipeline.name && d.stage == stage.label) return;
    CheckContext context(pipeline, stage, services);
    HostChecker checker(pipeline, stage, context, connect, diagnostics, unreachable);
    const bool asked_before = services.registry_asked;
    services.registry_asked = false;
    stage.component->check(stage.options, checker);
    // Known without contacting anything: a run would refuse the stage's first schema.
    if (services.registry_asked && config.schema_registry == "embedded" && config.kafka_brokers != "embedded")
      diagnostics.add(stage.where, pipeline.name, stage.label,
                      "uses the schema registry, but schema_registry is \"embedded\" (an in-memory "
                      "registry, lost when pipehost ends) while Kafka is " + config.kafka_brokers +
                      ": set schema_registry at the top of the file (the shipped configs read "
                      "SCHEMA_REGISTRY_URL) to the registry of that cluster");
    services.registry_asked = services.registry_asked || asked_before;
  };
  for (const auto& pipeline : config.pipelines) {
    check(pipeline, pipeline.source);
    for (const auto& t : pipeline.transforms) check(pipeline, t);
    check(pipeline, pipeline.sink);
  }
  const PipelineConfig http;  // a route belongs to no pipeline: its label (http.routes[0]) says where
  for (const auto& route : config.http.routes) check(http, route.stage);
}

}  // namespace pipehost::host
