// The host's own settings, declared like a plugin's options: the same declaration
// validates a file, fills these structs and writes the reference (docs/plugins.md).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "pipehost/options.hpp"

namespace pipehost::host {

// Keys at the top of a config file.
struct FileSettings {
  std::string schema_registry = "embedded";
  std::string admin;
  std::string admin_token;
  std::vector<std::string> plugin_path;
  StringMap connections;

  static void declare(OptionList<FileSettings>& o) {
    o.add("schema_registry", &FileSettings::schema_registry,
          "\"embedded\" (an in-memory registry in this process) or the URL of a "
          "Confluent-compatible Schema Registry");
    o.add("admin", &FileSettings::admin,
          "\"host:port\" of the admin HTTP endpoint (/health, /metrics, /pipelines); empty: off")
        .pattern("(|.*:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))");  // port 1-65535
    o.add("admin_token", &FileSettings::admin_token,
          "when set, every admin endpoint but /health wants \"Authorization: Bearer <token>\"");
    o.add("plugin_path", &FileSettings::plugin_path,
          "folders searched for plugins first, relative to this file");
    o.add("connections", &FileSettings::connections,
          "named connection facts (URLs, paths) that stages use when they leave the matching "
          "option out, e.g. { redis = \"redis://127.0.0.1:6379\" }: environments swap these, "
          "never a pipeline's shape");
  }
};

// [kafka]: the cluster every Kafka stage talks to.
struct KafkaSettings {
  std::string brokers = "embedded";
  StringMap properties;
  bool create_topics = true;

  static void declare(OptionList<KafkaSettings>& o) {
    o.add("brokers", &KafkaSettings::brokers,
          "\"embedded\" (an in-process cluster of 3 brokers, ~5 MiB kept per partition) or "
          "host:port,... of a real cluster");
    o.add("properties", &KafkaSettings::properties,
          "librdkafka properties for every Kafka client of the file");
    o.add("create_topics", &KafkaSettings::create_topics,
          "create the topics of [kafka.topics] on a real cluster when they are missing");
  }
};

// [kafka.topics.NAME]: a topic created at start.
struct TopicSettings {
  int partitions = 1;
  int replication_factor = 1;

  static void declare(OptionList<TopicSettings>& o) {
    // librdkafka's own limits for a topic it creates.
    o.add("partitions", &TopicSettings::partitions, "partitions of the topic").range(1, 100000);
    o.add("replication_factor", &TopicSettings::replication_factor,
          "replicas of each partition (at most the number of brokers)")
        .range(1, 10000);
  }
};

// [http]: the server the config's routes are mounted on.
struct HttpSettings {
  std::string listen;

  static void declare(OptionList<HttpSettings>& o) {
    o.required("listen", &HttpSettings::listen, "\"host:port\" the routes are served on")
        .pattern(".*:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])");  // port 1-65535
  }
};

// [[http.routes]]: one route, besides its `plugin` and that plugin's options.
struct RouteSettings {
  std::string path;
  std::vector<std::string> methods = {"GET"};

  static void declare(OptionList<RouteSettings>& o) {
    o.required("path", &RouteSettings::path, "the URL path, e.g. \"/aggregated\"").pattern("/.*");
    o.add("methods", &RouteSettings::methods, "HTTP methods answered (others get 405)");
  }
};

// [pipelines.NAME]: one pipeline's keys besides its source, transforms and sink.
struct PipelineSettings {
  int tasks = 1;
  std::int64_t batch_size = 512;
  std::int64_t max_in_flight_records = 16384;
  std::int64_t max_in_flight_bytes = 32 << 20;
  int commit_interval_ms = 1000;
  std::string on_error = "fail";
  std::string dead_letter_topic;
  std::vector<std::string> end_after;
  std::string description;
  int restart_attempts = 0;
  int restart_backoff_ms = 1000;
  int restart_backoff_max_ms = 60000;
  double max_error_rate = 1.0;
  std::int64_t error_rate_window = 1000;
  int stall_timeout_ms = 0;

  static void declare(OptionList<PipelineSettings>& o) {
    o.add("tasks", &PipelineSettings::tasks,
          "workers, each with its own source, transforms and sink (a Kafka source's tasks "
          "share the consumer group's partitions)")
        .range(1, 1024);  // a thread each (and a Kafka client each): more is a typo, not a plan
    o.add("batch_size", &PipelineSettings::batch_size, "records per batch").range(1, 1 << 20);
    o.add("max_in_flight_records", &PipelineSettings::max_in_flight_records,
          "backpressure: the source waits while this many records are not yet acknowledged")
        .at_least(1);
    o.add("max_in_flight_bytes", &PipelineSettings::max_in_flight_bytes,
          "backpressure: ... or while they hold this many bytes of keys and payloads (decoded values: one batch per task at most)")
        .at_least(1);
    o.add("commit_interval_ms", &PipelineSettings::commit_interval_ms,
          "how often acknowledged source positions are committed")
        .at_least(0);
    o.add("on_error", &PipelineSettings::on_error,
          "what a rejected record does: fail stops the pipeline, skip logs and drops it, "
          "dead_letter writes it to dead_letter_topic with headers saying why")
        .one_of({"fail", "skip", "dead_letter"});
    o.add("dead_letter_topic", &PipelineSettings::dead_letter_topic,
          "topic for on_error = \"dead_letter\" (default: <pipeline>-dlq); created at start when "
          "missing, with the broker's default partitions and replication (list it under "
          "[kafka.topics] to choose them)");
    o.add("end_after", &PipelineSettings::end_after,
          "end once that pipeline (or each of these pipelines) has ended and this one's source "
          "has read everything");
    o.add("description", &PipelineSettings::description, "free text, shown by the admin API");
    o.add("restart_attempts", &PipelineSettings::restart_attempts,
          "restarts of a failed pipeline (its tasks built and started again, reading on from the "
          "committed positions) before it stays failed; the count starts again once it has run "
          "restart_backoff_max_ms without failing. 0: a failure is final")
        .at_least(0);
    o.add("restart_backoff_ms", &PipelineSettings::restart_backoff_ms,
          "wait before the first restart; doubled for each further one, with jitter (half to all of it)")
        .at_least(1);
    o.add("restart_backoff_max_ms", &PipelineSettings::restart_backoff_max_ms,
          "the longest wait between restarts")
        .at_least(1);
    o.add("max_error_rate", &PipelineSettings::max_error_rate,
          "a breaker: the pipeline fails when more than this share of the last error_rate_window "
          "records of a task were rejected (whatever on_error says), e.g. 0.2; 1: off")
        .range(0, 1);
    o.add("error_rate_window", &PipelineSettings::error_rate_window,
          "records per task the error rate is measured over")
        .at_least(1);
    o.add("stall_timeout_ms", &PipelineSettings::stall_timeout_ms,
          "a stage call that has not returned, or records in flight that the sink has not "
          "acknowledged, for this long is reported (log, /pipelines, pipehost_stalls_total); "
          "unacknowledged records also fail the pipeline, so restart_attempts can restart it. 0: off")
        .at_least(0);
  }
};

}  // namespace pipehost::host
