#include "admin/exposition.hpp"

#include <prometheus/text_serializer.h>

#include <cctype>

namespace pipehost::host {

std::string Exposition::metric_name(std::string_view name) {
  std::string out;
  for (char c : name) {
    bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':';
    out += ok ? c : '_';
  }
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0]))) out.insert(out.begin(), '_');
  return out;
}

void Exposition::family(std::string_view name, std::string_view type, std::string_view help) {
  prometheus::MetricFamily f;
  f.name = std::string(name);
  f.help = std::string(help);
  f.type = type == "counter"     ? prometheus::MetricType::Counter
           : type == "gauge"     ? prometheus::MetricType::Gauge
           : type == "histogram" ? prometheus::MetricType::Histogram
                                 : prometheus::MetricType::Untyped;
  families_.push_back(std::move(f));
}

prometheus::ClientMetric& Exposition::add(const Labels& labels) {
  prometheus::ClientMetric& m = families_.back().metric.emplace_back();
  for (const auto& [k, v] : labels) m.label.push_back({metric_name(k), v});
  return m;
}

void Exposition::sample(const Labels& labels, double value) {
  prometheus::ClientMetric& m = add(labels);
  switch (families_.back().type) {
    case prometheus::MetricType::Counter: m.counter.value = value; break;
    case prometheus::MetricType::Gauge: m.gauge.value = value; break;
    default: m.untyped.value = value; break;
  }
}

void Exposition::histogram(const Labels& labels, const std::vector<std::pair<double, std::uint64_t>>& buckets,
                           double sum, std::uint64_t count) {
  prometheus::ClientMetric& m = add(labels);
  m.histogram.sample_count = count;
  m.histogram.sample_sum = sum;
  for (const auto& [bound, cumulative] : buckets) m.histogram.bucket.push_back({cumulative, bound});
}

std::string Exposition::text() const { return prometheus::TextSerializer().Serialize(families_); }

}  // namespace pipehost::host
