// The validated shape of a config file: what the runtime builds pipelines from.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include "config/diagnostics.hpp"
#include "pipehost/plugin.hpp"

namespace pipehost::host {

enum class ErrorPolicy { fail, skip, dead_letter };

struct StageConfig {
  std::string label;   // "source", "transforms[0]", "sink"
  std::string plugin;  // the component name
  Location where;
  const toml::table* table = nullptr;  // the stage's table in the document
  Options options;                     // validated, defaults filled
  const ComponentSpec* component = nullptr;
};

struct PipelineConfig {
  std::string name;
  Location where;
  int tasks = 1;
  std::size_t batch_size = 512;
  std::size_t max_in_flight_records = 16384;
  std::size_t max_in_flight_bytes = 32u << 20;
  int commit_interval_ms = 1000;
  ErrorPolicy on_error = ErrorPolicy::fail;
  int restart_attempts = 0;  // see PipelineSettings
  int restart_backoff_ms = 1000;
  int restart_backoff_max_ms = 60000;
  double max_error_rate = 1.0;  // 1: the breaker is off
  std::size_t error_rate_window = 1000;
  int stall_timeout_ms = 0;     // 0: no stall detection
  std::string dead_letter_topic;
  const ComponentSpec* dead_letter_sink = nullptr;  // the kafka sink, for on_error = dead_letter
  // Ends once these pipelines have all ended and this source is caught up.
  std::vector<std::string> end_after;
  Location end_after_where;
  StageConfig source;
  std::vector<StageConfig> transforms;
  StageConfig sink;
};

// [[http.routes]]: a route component mounted on the [http] server.
struct RouteConfig {
  // What `methods` may name (config/build.cpp checks, http/route_server.cpp registers);
  // HEAD and OPTIONS are answered for them.
  static constexpr std::array<std::string_view, 5> kMethods = {"GET", "POST", "PUT", "DELETE",
                                                               "PATCH"};
  std::string path;
  std::vector<std::string> methods;
  StageConfig stage;  // label "http.routes[i]"
};

struct HttpConfig {
  std::string listen;  // "host:port"; empty: no [http] server
  std::vector<RouteConfig> routes;
};

struct TopicConfig {
  std::string name;
  int partitions = 1;
  int replication_factor = 1;
};

struct Config {
  std::vector<std::string> files;
  std::string kafka_brokers = "embedded";
  StringMap kafka_properties;
  bool create_topics = true;
  std::vector<TopicConfig> topics;
  std::string schema_registry = "embedded";
  std::vector<std::string> plugin_path;
  std::string admin;  // "host:port" of the admin HTTP endpoint; empty: off
  std::string admin_token;  // when set, the admin API wants "Authorization: Bearer <token>"
  StringMap connections;    // [connections]: what stages leave out of their connection options
  std::vector<PipelineConfig> pipelines;
  HttpConfig http;
  std::shared_ptr<toml::table> document;  // owns what StageConfig::table points at
};

}  // namespace pipehost::host
