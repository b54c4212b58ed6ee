// /metrics: the pipelines', stages' and plugins' figures in Prometheus's text format.
#include "admin/admin_server.hpp"

#include <limits>
#include <set>

#include "admin/exposition.hpp"

namespace pipehost::host {

std::string AdminServer::metrics() const {
  Exposition e;
  auto per_pipeline = [&](const char* name, const char* type, const char* help, auto value) {
    e.family(name, type, help);
    for (auto& p : pipelines_()) e.sample({{"pipeline", p->config().name}}, static_cast<double>(value(*p)));
  };
  per_pipeline("pipehost_pipeline_running", "gauge", "1 while the pipeline runs, 0 once it ended or failed.",
               [](Pipeline& p) { return std::uint64_t{p.done() ? 0u : 1u}; });
  per_pipeline("pipehost_records_read_total", "counter", "Records read by the pipeline's sources.",
               [](Pipeline& p) { return p.state().records_read.load(); });
  per_pipeline("pipehost_records_acknowledged_total", "counter", "Records the sink confirmed.",
               [](Pipeline& p) { return p.state().records_acked.load(); });
  per_pipeline("pipehost_records_rejected_total", "counter", "Records rejected by any stage.",
               [](Pipeline& p) { return p.state().records_rejected.load(); });
  per_pipeline("pipehost_records_dead_lettered_total", "counter",
               "Rejected records written to the dead-letter topic.",
               [](Pipeline& p) { return p.state().records_dead_lettered.load(); });
  per_pipeline("pipehost_in_flight_records", "gauge", "Records read and not yet acknowledged by the sink.",
               [](Pipeline& p) {
                 std::uint64_t n = 0;
                 for (const auto& t : p.state().in_flight_records) n += t.load();
                 return n;
               });
  per_pipeline("pipehost_in_flight_bytes", "gauge",
               "Bytes (keys, payloads, decoded values) of the records in flight.", [](Pipeline& p) {
                 std::uint64_t n = 0;
                 for (const auto& t : p.state().in_flight_bytes) n += t.load();
                 return n;
               });
  per_pipeline("pipehost_commits_total", "counter", "Acknowledged positions handed to the source to commit.",
               [](Pipeline& p) { return p.state().commits.load(); });
  per_pipeline("pipehost_rewinds_total", "counter",
               "Times a sink's store had lost writes and the source read again from its position.",
               [](Pipeline& p) { return p.state().rewinds.load(); });
  per_pipeline("pipehost_restarts_total", "counter", "Restarts, after a failure or asked for through the admin API.",
               [](Pipeline& p) { return p.state().restarts.load(); });
  per_pipeline("pipehost_stalls_total", "counter",
               "Stage calls, or records in flight, that made no progress for stall_timeout_ms.",
               [](Pipeline& p) { return p.state().stalls.load(); });

  auto per_stage = [&](const char* name, const char* type, const char* help, auto value) {
    e.family(name, type, help);
    for (auto& p : pipelines_())
      for (const StageStats& s : p->state().stages)
        e.sample({{"pipeline", p->config().name}, {"stage", s.label}}, static_cast<double>(value(*p, s)));
  };
  per_stage("pipehost_stage_records_in_total", "counter", "Records handed to the stage (transforms, sink).",
            [](Pipeline&, const StageStats& s) { return s.records_in.load(); });
  per_stage("pipehost_stage_records_out_total", "counter",
            "Records the stage passed on (the source: read; the sink: acknowledged).",
            [](Pipeline& p, const StageStats& s) {
              return &s == &p.state().stages.back() ? p.state().records_acked.load() : s.records_out.load();
            });
  per_stage("pipehost_stage_records_rejected_total", "counter", "Records the stage rejected.",
            [](Pipeline&, const StageStats& s) { return s.records_rejected.load(); });
  per_stage("pipehost_stage_retries_total", "counter", "Calls of the stage retried after a retriable error.",
            [](Pipeline&, const StageStats& s) { return s.retries.load(); });
  per_stage("pipehost_stage_cpu_seconds_total", "counter", "Thread CPU time spent in the stage's calls.",
            [](Pipeline&, const StageStats& s) { return static_cast<double>(s.cpu_ns.load()) / 1e9; });

  e.family("pipehost_end_to_end_latency_seconds", "histogram",
           "Record timestamp (Kafka CreateTime, or when the source made it) to the sink's acknowledgement.");
  for (auto& p : pipelines_()) {
    const LatencyHistogram& l = p->state().latency;
    std::vector<std::pair<double, std::uint64_t>> buckets;
    for (double bound : {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0})
      buckets.emplace_back(bound, l.count_at_most(static_cast<std::int64_t>(bound * 1000 + 0.5)));
    // Read after the buckets, which records keep filling: +Inf never below the last one.
    const std::uint64_t count = std::max(l.count(), buckets.back().second);
    buckets.emplace_back(std::numeric_limits<double>::infinity(), count);
    e.histogram({{"pipeline", p->config().name}}, buckets, static_cast<double>(l.sum_ms()) / 1000, count);
  }
  e.family("pipehost_batch_duration_seconds", "histogram",
           "One batch from the source through the transforms into the sink's hands.");
  for (auto& p : pipelines_()) {
    const DurationHistogram& h = p->state().batch_duration;
    std::vector<std::pair<double, std::uint64_t>> buckets;
    for (std::size_t i = 0; i < DurationHistogram::kBounds.size(); ++i)
      buckets.emplace_back(DurationHistogram::kBounds[i], h.cumulative(i));
    const std::uint64_t count = std::max(h.cumulative(DurationHistogram::kBounds.size()), buckets.back().second);
    buckets.emplace_back(std::numeric_limits<double>::infinity(), count);
    e.histogram({{"pipeline", p->config().name}}, buckets, h.sum_seconds(), count);
  }

  // What the plugins count and measure, one family per exposed name: two names that
  // become one once cleaned ("eu-west", "eu.west") are one family, or Prometheus would
  // refuse the scrape for its repeated TYPE line.
  // Only the pipelines there are now: a reload that removed one keeps its plugins' counters
  // alive (a stage holds a reference for the process's life) but no longer shows them.
  std::set<std::string> present;
  for (auto& p : pipelines_()) present.insert(p->config().name);
  auto plugin_families = [&](auto metrics, const std::string& suffix, const char* type, const char* help) {
    std::vector<std::pair<std::string, std::size_t>> order;  // exposed name, index
    for (std::size_t i = 0; i < metrics.size(); ++i)
      if (present.count(metrics[i].first.pipeline))
        order.emplace_back(Exposition::metric_name("pipehost_plugin_" + metrics[i].first.name) + suffix, i);
    std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (std::size_t k = 0; k < order.size(); ++k) {
      if (k == 0 || order[k - 1].first != order[k].first) e.family(order[k].first, type, help);
      const MetricKey& key = metrics[order[k].second].first;
      Labels labels = {{"pipeline", key.pipeline}, {"stage", key.stage}};
      labels.insert(labels.end(), key.labels.begin(), key.labels.end());
      e.sample(labels, static_cast<double>(metrics[order[k].second].second));
    }
  };
  plugin_families(services_.metrics.counters(), "_total", "counter", "Counted by the stage's plugin.");
  plugin_families(services_.metrics.gauges(), "", "gauge", "Measured by the stage's plugin.");
  return e.text();
}

}  // namespace pipehost::host
