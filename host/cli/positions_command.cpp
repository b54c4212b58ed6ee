#include "cli/positions_command.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <memory>
#include <mutex>
#include <vector>

#include "cli/commands.hpp"
#include "loader/plugin_registry.hpp"
#include "pipehost/time.hpp"
#include "runtime/pipeline.hpp"
#include "runtime/stage_context.hpp"
#include "services/memory_registry.hpp"
#include "services/kafka_environment.hpp"
#include "services/rest_registry.hpp"

namespace pipehost::host {
namespace {

using Handle = std::unique_ptr<rd_kafka_t, decltype(&rd_kafka_destroy)>;
using List = std::unique_ptr<rd_kafka_topic_partition_list_t, decltype(&rd_kafka_topic_partition_list_destroy)>;

struct Row {
  std::string topic;
  int partition = 0;
  std::int64_t committed = -1, low = -1, high = -1, target = -1;
  std::optional<std::int64_t> stored;  // the sink's own position, when it keeps one
};

// The positions a sink stores with its data (exactly-once sinks: redis_sum, sqlite,
// postgres), read through the sink itself, built with a context that tells it to read
// only. Sinks whose plugin does not say they store positions are not built: the kafka
// sink's exactly-once positions are the group's offsets (and a start would begin a
// transactional producer that fences the running pipeline's), and the log and file sinks
// would write at start. `error` when the sink cannot be asked.
bool read_sink_positions(const Config& config, const PipelineConfig& pipeline, std::vector<Row>& rows,
                         std::string& error) {
  if (!pipeline.sink.component->stores_positions) return true;
  Services services;
  services.kafka_bootstrap = config.kafka_brokers;
  services.kafka_properties = config.kafka_properties;
  services.data_dir = data_directory();
  std::unique_ptr<SchemaRegistry> registry;
  registry = make_schema_registry(config.schema_registry, config.kafka_brokers == "embedded",
                                  config.kafka_brokers);
  services.registry = registry.get();
  PipelineState state(pipeline);
  StageContext context(services, state, "sink", 0, pipeline.tasks, {});
  context.set_reading_positions_only();
  auto sink = pipeline.sink.component->make_sink(pipeline.sink.options, context, error);
  if (!sink) return false;
  if (Status s = sink->start(); !s.is_ok()) {
    error = s.message();
    return false;
  }
  for (auto& r : rows)
    if (Status s = sink->stored_position(r.topic, r.partition, r.stored); !s.is_ok()) {
      error = s.message();
      break;
    }
  sink->stop();
  return error.empty();
}

std::string offset_text(std::int64_t offset) { return offset < 0 ? "-" : std::to_string(offset); }

// librdkafka's last error line (a refused connection, a failed authentication), said with
// the command's own message instead of as raw "%3|...|FAIL|" lines while it retries.
std::mutex last_log_mutex;
std::string last_log;

void keep_last_log(const rd_kafka_t*, int level, const char*, const char* line) {
  if (level > 3) return;
  std::lock_guard lock(last_log_mutex);
  last_log = line;
}

std::string librdkafka_said() {
  std::lock_guard lock(last_log_mutex);
  return last_log.empty() ? "" : " (librdkafka: " + last_log + ")";
}

// A consumer handle of the group that never subscribes: it reads and commits offsets,
// as kafka-consumer-groups does, without joining the group.
Handle group_client(const Config& config, const std::string& group, std::string& error) {
  StringMap settings = config.kafka_properties;
  settings["bootstrap.servers"] = config.kafka_brokers;
  settings["group.id"] = group;
  settings["enable.auto.commit"] = "false";
  settings["log_level"] = "3";
  rd_kafka_conf_t* conf = kafka_conf(settings, error);
  if (!conf) return Handle(nullptr, rd_kafka_destroy);
  rd_kafka_conf_set_log_cb(conf, keep_last_log);
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!rk) error = err;
  return Handle(rk, rd_kafka_destroy);
}

// Members of the group now: a reset under a running member would be undone by its commits.
int active_members(rd_kafka_t* rk, const std::string& group, std::string& error) {
  const rd_kafka_group_list* groups = nullptr;
  rd_kafka_resp_err_t rc = rd_kafka_list_groups(rk, group.c_str(), &groups, 10000);
  if (rc) {
    error = rd_kafka_err2str(rc);
    return -1;
  }
  int members = groups->group_cnt > 0 ? groups->groups[0].member_cnt : 0;
  rd_kafka_group_list_destroy(groups);
  return members;
}

}  // namespace

int positions_command(const Config& config, const PipelineConfig& pipeline, const std::string& reset_to,
                      bool execute) {
  auto fail = [](const std::string& message, int code) {
    std::fprintf(stderr, "pipehost positions: %s\n", message.c_str());
    return code;
  };
  if (pipeline.source.plugin != "kafka")
    return fail("pipeline '" + pipeline.name + "' reads with '" + pipeline.source.plugin +
                    "', not the kafka source: it has no consumer group positions",
                kInvalidInput);
  if (config.kafka_brokers == "embedded")
    return fail("the embedded broker lives inside a running pipehost: positions reads a real "
                "cluster ([kafka] brokers, or --env real)",
                kInvalidInput);
  // The kafka source's own option names (required there, so validation filled them).
  const auto& values = pipeline.source.options.values;
  auto group_value = values.find("group");
  auto topics_value = values.find("topics");
  if (group_value == values.end() || topics_value == values.end() ||
      !std::holds_alternative<std::string>(group_value->second) ||
      !std::holds_alternative<std::vector<std::string>>(topics_value->second))
    return fail("this kafka plugin's source has no group and topics options: is it another version?",
                kInvalidInput);
  std::string group = std::get<std::string>(group_value->second);
  auto topics = std::get<std::vector<std::string>>(topics_value->second);

  std::optional<std::int64_t> fixed_offset, at_time_ms;
  if (!reset_to.empty() && reset_to != "earliest" && reset_to != "latest") {
    std::int64_t n = 0;
    auto [end, ec] = std::from_chars(reset_to.data(), reset_to.data() + reset_to.size(), n);
    if (ec == std::errc() && end == reset_to.data() + reset_to.size() && n >= 0) fixed_offset = n;
    else if (auto t = time::parse_rfc3339(reset_to)) at_time_ms = t->micros_since_epoch / 1000;
    else
      return fail("--reset-to '" + reset_to + "': give earliest, latest, an offset (e.g. 1500) or an "
                  "RFC 3339 time (e.g. 2026-12-01T09:00:00Z)",
                  kInvalidInput);
  }

  std::string error;
  Handle rk = group_client(config, group, error);
  if (!rk) return fail("cannot create a Kafka client: " + error, kInvalidInput);

  std::vector<Row> rows;
  for (const auto& topic : topics) {
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk.get(), topic.c_str(), nullptr);
    rd_kafka_resp_err_t rc = rd_kafka_metadata(rk.get(), 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (rc)
      return fail("cannot reach " + config.kafka_brokers + ": " + rd_kafka_err2str(rc) + librdkafka_said(),
                  kServicesUnavailable);
    if (md->topic_cnt != 1 || md->topics[0].err) {
      const rd_kafka_resp_err_t err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
      rd_kafka_metadata_destroy(md);
      if (err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        return fail("cannot read topic '" + topic + "' on " + config.kafka_brokers + ": " + rd_kafka_err2str(err),
                    kServicesUnavailable);
      return fail("topic '" + topic + "' does not exist on " + config.kafka_brokers, kInvalidInput);
    }
    for (int p = 0; p < md->topics[0].partition_cnt; ++p) {
      Row& row = rows.emplace_back();
      row.topic = topic;
      row.partition = md->topics[0].partitions[p].id;
    }
    rd_kafka_metadata_destroy(md);
  }
  List list(rd_kafka_topic_partition_list_new(static_cast<int>(rows.size())), rd_kafka_topic_partition_list_destroy);
  for (const auto& r : rows) rd_kafka_topic_partition_list_add(list.get(), r.topic.c_str(), r.partition);
  if (rd_kafka_resp_err_t rc = rd_kafka_committed(rk.get(), list.get(), 10000))
    return fail(std::string("cannot read the group's offsets: ") + rd_kafka_err2str(rc), kServicesUnavailable);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    Row& r = rows[i];
    r.committed = list->elems[i].offset;
    if (rd_kafka_resp_err_t rc =
            rd_kafka_query_watermark_offsets(rk.get(), r.topic.c_str(), r.partition, &r.low, &r.high, 10000))
      return fail(std::string("cannot read the partitions' ends: ") + rd_kafka_err2str(rc), kServicesUnavailable);
  }

  std::string sink_error;
  const bool sink_known = read_sink_positions(config, pipeline, rows, sink_error);
  if (!sink_known)
    std::fprintf(stderr, "pipehost positions: cannot ask the sink (%s) for its stored positions: %s\n",
                 pipeline.sink.plugin.c_str(), sink_error.c_str());
  bool sink_stores = std::any_of(rows.begin(), rows.end(), [](const Row& r) { return r.stored.has_value(); });

  if (!reset_to.empty()) {
    List targets(rd_kafka_topic_partition_list_new(static_cast<int>(rows.size())),
                 rd_kafka_topic_partition_list_destroy);
    for (auto& r : rows) {
      auto* t = rd_kafka_topic_partition_list_add(targets.get(), r.topic.c_str(), r.partition);
      if (reset_to == "earliest") t->offset = r.low;
      else if (reset_to == "latest") t->offset = r.high;
      else if (fixed_offset) t->offset = std::clamp(*fixed_offset, r.low, r.high);
      else t->offset = *at_time_ms;
    }
    if (at_time_ms) {
      if (rd_kafka_resp_err_t rc = rd_kafka_offsets_for_times(rk.get(), targets.get(), 10000))
        return fail(std::string("cannot look up offsets by time: ") + rd_kafka_err2str(rc), kServicesUnavailable);
      for (int i = 0; i < targets->cnt; ++i) {
        const auto& t = targets->elems[i];
        if (t.err)  // left as it was, --execute would commit the partition at its end, past its records
          return fail("cannot look up the offset by time of " + std::string(t.topic) + "/" +
                          std::to_string(t.partition) + ": " + rd_kafka_err2str(t.err) + "; nothing was reset",
                      kServicesUnavailable);
        if (t.offset < 0) targets->elems[i].offset = rows[static_cast<std::size_t>(i)].high;  // after the last record: the end
      }
    }
    for (std::size_t i = 0; i < rows.size(); ++i) rows[i].target = targets->elems[i].offset;
    if (execute && !sink_known)  // a sink storing positions resumes from those, not from the reset
      return fail("nothing was reset: the sink (" + pipeline.sink.plugin +
                      ") could not say whether it stores positions of its own, which the pipeline "
                      "would resume from instead; make it reachable and run this again",
                  kServicesUnavailable);
    if (execute) {
      int members = active_members(rk.get(), group, error);
      if (members < 0) return fail("cannot describe group '" + group + "': " + error, kServicesUnavailable);
      if (members > 0)
        return fail("group '" + group + "' has " + std::to_string(members) +
                        " active member(s): stop every process running pipeline '" + pipeline.name +
                        "' first (its commits would undo the reset)",
                    kPipelineFailed);
      if (rd_kafka_resp_err_t rc = rd_kafka_commit(rk.get(), targets.get(), 0))
        return fail(std::string("the commit failed: ") + rd_kafka_err2str(rc), kPipelineFailed);
      for (auto& r : rows) r.committed = r.target;  // the table shows the group as it is now
    }
  }

  // With a sink that stores positions, those are where the pipeline resumes: the lag is
  // measured from them.
  std::printf("%-24s %9s %12s %12s %12s %12s %10s%s\n", "TOPIC", "PARTITION", "COMMITTED", "SINK STORED",
              "START", "END", "LAG", reset_to.empty() ? "" : (execute ? "  NOW AT" : "  WOULD BE"));
  // Where the pipeline would read from: the sink's stored position, else the group's
  // committed offset (a sink storing positions for some partitions only resumes the others
  // from there), else the source's `start`.
  auto start_value = values.find("start");
  const bool from_latest = start_value != values.end() && start_value->second == OptionValue(std::string("latest"));
  for (const auto& r : rows) {
    std::int64_t from = r.stored ? *r.stored : r.committed;
    std::int64_t lag = from >= 0 ? r.high - from : from_latest ? 0 : r.high - r.low;
    std::printf("%-24s %9d %12s %12s %12s %12s %10lld", r.topic.c_str(), r.partition,
                offset_text(r.committed).c_str(), offset_text(r.stored.value_or(-1)).c_str(),
                offset_text(r.low).c_str(), offset_text(r.high).c_str(), static_cast<long long>(lag));
    if (!reset_to.empty()) std::printf("  %s", offset_text(r.target).c_str());
    std::printf("\n");
  }
  std::printf("group '%s' on %s\n", group.c_str(), config.kafka_brokers.c_str());
  if (!reset_to.empty()) {
    if (!execute) std::printf("dry run: add --execute to commit these offsets (stop the pipeline first)\n");
    if (sink_stores)
      std::printf("this pipeline's sink (%s) stores positions with its data and resumes from those "
                  "(SINK STORED), not from the group's offsets: reset them in its store\n",
                  pipeline.sink.plugin.c_str());
  }
  return kOk;
}

}  // namespace pipehost::host
