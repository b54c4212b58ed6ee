#include "runtime/runtime.hpp"

#include <algorithm>

#include "log.hpp"
#include "pipehost/redact.hpp"
#include "services/kafka_environment.hpp"
#include "services/memory_registry.hpp"
#include "services/rest_registry.hpp"

namespace pipehost::host {
namespace {

// The configured topics, and each dead-letter topic not among them: with the broker's
// default partitions and replication (-1), as a topic it creates itself would have. One
// replica on a real cluster lost its letters with a disk, and a cluster whose
// min.insync.replicas is 2 refused every letter.
std::vector<TopicConfig> topics_to_create(const Config& config) {
  std::vector<TopicConfig> topics = config.topics;
  for (const auto& p : config.pipelines) {
    if (p.on_error != ErrorPolicy::dead_letter) continue;
    bool known = false;
    for (const auto& t : topics) known = known || t.name == p.dead_letter_topic;
    if (!known) topics.push_back({p.dead_letter_topic, -1, -1});
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
  std::lock_guard lock(pipelines_mutex_);
  pipelines_.clear();  // before the services they use
}

bool Runtime::start_services(std::string& error) {
  Config with_topics = config_;
  with_topics.topics = topics_to_create(config_);
  if (!kafka_->start(with_topics, error)) return false;
  services_.kafka_bootstrap = kafka_->bootstrap();
  services_.kafka_embedded = kafka_->embedded();
  registry_ = make_schema_registry(config_.schema_registry, kafka_->embedded(), kafka_->bootstrap());
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
  {
    std::lock_guard lock(pipelines_mutex_);
    for (const auto& p : config_.pipelines) pipelines_.push_back(std::make_shared<Pipeline>(p, services_));
  }
  log_info("running " + std::to_string(pipelines_.size()) + " pipeline(s)");
  for (auto& p : pipelines_) p->start();
}

namespace {
bool same_stage(const StageConfig& x, const StageConfig& y) {
  return x.plugin == y.plugin && x.label == y.label && x.options.values == y.options.values;
}

bool same_routes(const HttpConfig& a, const HttpConfig& b) {
  if (a.listen != b.listen || a.routes.size() != b.routes.size()) return false;
  for (std::size_t i = 0; i < a.routes.size(); ++i)
    if (a.routes[i].path != b.routes[i].path || a.routes[i].methods != b.routes[i].methods ||
        !same_stage(a.routes[i].stage, b.routes[i].stage))
      return false;
  return true;
}
}  // namespace

bool same_definition(const PipelineConfig& a, const PipelineConfig& b) {
  if (a.transforms.size() != b.transforms.size()) return false;
  for (std::size_t i = 0; i < a.transforms.size(); ++i)
    if (!same_stage(a.transforms[i], b.transforms[i])) return false;
  return a.name == b.name && a.tasks == b.tasks && a.batch_size == b.batch_size &&
         a.max_in_flight_records == b.max_in_flight_records &&
         a.max_in_flight_bytes == b.max_in_flight_bytes && a.commit_interval_ms == b.commit_interval_ms &&
         a.on_error == b.on_error && a.restart_attempts == b.restart_attempts &&
         a.restart_backoff_ms == b.restart_backoff_ms && a.restart_backoff_max_ms == b.restart_backoff_max_ms &&
         a.max_error_rate == b.max_error_rate && a.error_rate_window == b.error_rate_window &&
         a.stall_timeout_ms == b.stall_timeout_ms && a.dead_letter_topic == b.dead_letter_topic &&
         a.end_after == b.end_after && same_stage(a.source, b.source) && same_stage(a.sink, b.sink);
}

std::string Runtime::fixed_settings_changed(const Config& next) const {
  std::string changed;
  auto note = [&](bool differs, const char* what) {
    if (differs) changed += (changed.empty() ? "" : ", ") + std::string(what);
  };
  note(next.kafka_brokers != config_.kafka_brokers, "[kafka] brokers");
  note(next.kafka_properties != config_.kafka_properties, "[kafka] properties");
  note(next.schema_registry != config_.schema_registry, "schema_registry");
  note(next.admin != config_.admin || next.admin_token != config_.admin_token, "admin");
  note(!same_routes(next.http, config_.http), "[http]");
  return changed;
}

bool Runtime::create_new_topics(const Config& next, std::string& error) {
  const std::vector<TopicConfig> running = topics_to_create(config_);
  std::vector<TopicConfig> fresh;
  for (const auto& t : topics_to_create(next))
    if (std::none_of(running.begin(), running.end(), [&](const TopicConfig& r) { return r.name == t.name; }))
      fresh.push_back(t);
  return fresh.empty() || kafka_->create_topics(fresh, next.create_topics, error);
}

std::string Runtime::apply(const Config& next, const std::function<void()>& wait) {
  PipelineList now = pipelines();
  PipelineList keep, retire;
  std::vector<const PipelineConfig*> start;
  std::string added, changed, removed;
  auto add = [](std::string& list, const std::string& name) { list += (list.empty() ? "" : ", ") + name; };
  for (const auto& p : now) {
    auto it = std::find_if(next.pipelines.begin(), next.pipelines.end(),
                           [&](const PipelineConfig& c) { return c.name == p->config().name; });
    if (it == next.pipelines.end()) {
      retire.push_back(p);
      add(removed, p->config().name);
    } else if (!same_definition(p->config(), *it)) {
      retire.push_back(p);
      start.push_back(&*it);
      add(changed, it->name);
    } else {
      keep.push_back(p);
    }
  }
  for (const auto& c : next.pipelines)
    if (std::none_of(now.begin(), now.end(), [&](const auto& p) { return p->config().name == c.name; })) {
      start.push_back(&c);
      add(added, c.name);
    }
  // Drain the old ones first: a changed pipeline's new tasks join the same consumer group.
  // The caller's `wait` takes signals meanwhile: a drain can take long (a sink that does
  // not answer), and SIGINT must still stop the process.
  for (auto& p : retire) p->request_stop();
  for (auto& p : retire)
    while (!p->done()) wait();
  for (auto& p : retire) p->join();
  for (auto& p : retire) ended_.erase(p->config().name);  // a new one has not ended
  const bool interrupted = services_.stopping;
  if (interrupted) start.clear();
  PipelineList started;
  for (const PipelineConfig* c : start) started.push_back(std::make_shared<Pipeline>(*c, services_));
  {
    std::lock_guard lock(pipelines_mutex_);
    pipelines_ = keep;
    pipelines_.insert(pipelines_.end(), started.begin(), started.end());
  }
  for (auto& p : retire) announced_.erase(p.get());
  for (auto& p : started) {
    const auto& after = p->config().end_after;
    if (!after.empty() && std::all_of(after.begin(), after.end(),
                                      [&](const std::string& n) { return ended_.count(n) > 0; }))
      p->request_finish();
    p->start();
  }
  if (interrupted) return "stopped the pipelines it retires; a stop came meanwhile, so none was started";
  if (added.empty() && changed.empty() && removed.empty()) return "nothing changed";
  std::string summary;
  if (!added.empty()) summary += "started " + added;
  if (!changed.empty()) summary += (summary.empty() ? "" : "; ") + std::string("restarted ") + changed;
  if (!removed.empty()) summary += (summary.empty() ? "" : "; ") + std::string("stopped ") + removed;
  return summary + "; " + std::to_string(keep.size()) + " kept running";
}

bool Runtime::supervise() {
  bool all_done = true;
  PipelineList list = pipelines();
  for (auto& p : list) {
    if (!p->done()) {
      all_done = false;
      continue;
    }
    if (announced_.count(p.get())) continue;
    announced_.insert(p.get());
    ended_.insert(p->config().name);
    for (auto& other : list) {
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
  // Every pipeline has ended; one an admin restart starts now would run on unwatched.
  for (auto& p : pipelines()) p->request_stop();
  for (auto& p : pipelines()) p->join();
}

}  // namespace pipehost::host
