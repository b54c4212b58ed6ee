#include "runtime/runtime.hpp"

#include <algorithm>

#include "log.hpp"
#include "pipehost/redact.hpp"
#include "services/kafka_environment.hpp"
#include "services/memory_registry.hpp"
#include "services/rest_registry.hpp"

namespace pipehost::host {
namespace {

// The configured topics, and each dead-letter topic not among them.
std::vector<TopicConfig> topics_to_create(const Config& config) {
  std::vector<TopicConfig> topics = config.topics;
  for (const auto& p : config.pipelines) {
    if (p.on_error != ErrorPolicy::dead_letter) continue;
    bool known = false;
    for (const auto& t : topics) known = known || t.name == p.dead_letter_topic;
    if (!known) topics.push_back({p.dead_letter_topic, 1, 1});
  }
  return topics;
}

}  // namespace

Runtime::Runtime(const Config& config, std::string data_dir)
    : config_(config), kafka_(std::make_unique<KafkaEnvironment>()) {
  services_.data_dir = std::move(data_dir);
  services_.kafka_properties = config.kafka_properties;
}

Runtime::~Runtime() {
  stop();
  join();
  pipelines_.clear();  // before the services they use
}

bool Runtime::start_services(std::string& error) {
  Config with_topics = config_;
  with_topics.topics = topics_to_create(config_);
  if (!kafka_->start(with_topics, error)) return false;
  services_.kafka_bootstrap = kafka_->bootstrap();
  if (config_.schema_registry == "embedded") registry_ = std::make_unique<MemorySchemaRegistry>();
  else registry_ = std::make_unique<RestSchemaRegistry>(config_.schema_registry);
  services_.registry = registry_.get();
  log_info("Kafka " + std::string(kafka_->embedded() ? "embedded" : kafka_->bootstrap()) +
           ", schema registry " + redact::url(config_.schema_registry));
  return true;
}

CheckServices Runtime::check_services() const {
  return {services_.registry, services_.kafka_bootstrap, services_.kafka_properties,
          services_.data_dir};
}

bool Runtime::embedded_kafka() const { return kafka_->embedded(); }

void Runtime::start_pipelines() {
  for (const auto& p : config_.pipelines) pipelines_.push_back(std::make_unique<Pipeline>(p, services_));
  announced_.assign(pipelines_.size(), false);
  log_info("running " + std::to_string(pipelines_.size()) + " pipeline(s)");
  for (auto& p : pipelines_) p->start();
}

bool Runtime::supervise() {
  bool all_done = true;
  for (std::size_t i = 0; i < pipelines_.size(); ++i) {
    if (!pipelines_[i]->done()) {
      all_done = false;
      continue;
    }
    if (announced_[i]) continue;
    announced_[i] = true;
    ended_.insert(pipelines_[i]->config().name);
    for (auto& other : pipelines_) {
      const auto& after = other->config().end_after;
      if (!after.empty() && std::all_of(after.begin(), after.end(),
                                        [&](const std::string& n) { return ended_.count(n) > 0; }))
        other->request_finish();
    }
  }
  auto now = std::chrono::steady_clock::now();
  if (now - last_retention_check_ > std::chrono::seconds(1) || all_done) {
    for (const auto& w : kafka_->retention_warnings(all_done)) log_line(LogLevel::error, "pipehost", w);
    last_retention_check_ = now;
  }
  return all_done;
}

void Runtime::stop() { services_.stopping = true; }

void Runtime::join() {
  for (auto& p : pipelines_) p->join();
}

}  // namespace pipehost::host
