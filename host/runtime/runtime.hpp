// Everything one `pipehost run` runs: the Kafka it talks to (the embedded cluster or a
// real one, topics created), the schema registry client, and the pipelines. The CLI
// drives it (signals, progress, the admin endpoint); runtime/ knows none of those.
#pragma once
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "config/model.hpp"
#include "config/stage_checks.hpp"
#include "runtime/pipeline.hpp"
#include "runtime/services.hpp"

namespace pipehost::host {

class KafkaEnvironment;

using PipelineList = std::vector<std::shared_ptr<Pipeline>>;

// Whether two definitions of a pipeline would run the same way (a reload keeps it).
bool same_definition(const PipelineConfig& a, const PipelineConfig& b);

class Runtime {
 public:
  Runtime(const Config& config, std::string data_dir);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Starts Kafka (in-process, or topics made on a real cluster) and the registry
  // client. False with `error` when a service cannot be reached.
  bool start_services(std::string& error);
  // What the stages' config checks use, once the services are up.
  CheckServices check_services() const;
  void start_pipelines();
  // One round of supervision: pipelines ending others (end_after), the embedded
  // broker's retention warnings. True once every pipeline has ended.
  bool supervise();
  void stop();  // drain, flush, commit and end every pipeline
  void join();

  // The pipelines now (a copy: a reload may replace them while the caller looks).
  PipelineList pipelines() const {
    std::lock_guard lock(pipelines_mutex_);
    return pipelines_;
  }
  // A reload: pipelines gone from `next` or defined differently are drained and stopped,
  // new and changed ones started, the others keep running untouched. `next` must outlive
  // the pipelines started from it. Returns what changed, for the log.
  // `wait` is called while the retired pipelines drain (it waits a moment, and may stop
  // the runtime: then nothing new is started).
  std::string apply(const Config& next, const std::function<void()>& wait);
  // Settings only a restart of the process applies; "" when `next` changes none.
  std::string fixed_settings_changed(const Config& next) const;
  // Before a reload's apply: the topics `next` lists (and its dead-letter topics) that
  // the running config did not, created as at start. False with `error` set.
  bool create_new_topics(const Config& next, std::string& error);
  Services& services() { return services_; }
  bool embedded_kafka() const;

 private:
  const Config& config_;
  Services services_;
  std::unique_ptr<KafkaEnvironment> kafka_;
  std::unique_ptr<SchemaRegistry> registry_;
  mutable std::mutex pipelines_mutex_;
  PipelineList pipelines_;
  std::set<const Pipeline*> announced_;  // ended, and end_after applied
  std::set<std::string> ended_;  // names of the pipelines that have ended
  std::chrono::steady_clock::time_point last_retention_check_{};
};

}  // namespace pipehost::host
