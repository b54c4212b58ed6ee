// The Prometheus text exposition, through prometheus-cpp's core (Debian's
// prometheus-cpp-dev): the host builds metric families from its own counters at scrape
// time and the library writes the text (escaping, number formats, histogram series).
#pragma once
#include <prometheus/metric_family.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pipehost::host {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Exposition {
 public:
  // Starts a metric family ("counter", "gauge" or "histogram"); its samples follow.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(const Labels& labels, double value);
  // One histogram series: (upper bound, observations at or below it), +Inf last.
  void histogram(const Labels& labels, const std::vector<std::pair<double, std::uint64_t>>& buckets,
                 double sum, std::uint64_t count);
  std::string text() const;

  // [a-zA-Z_:][a-zA-Z0-9_:]*: anything else becomes '_'.
  static std::string metric_name(std::string_view name);

 private:
  prometheus::ClientMetric& add(const Labels& labels);
  std::vector<prometheus::MetricFamily> families_;
};

}  // namespace pipehost::host
