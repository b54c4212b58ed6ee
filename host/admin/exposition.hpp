// Prometheus text exposition format 0.0.4, written by hand: Debian ships no C++
// Prometheus client (prometheus-cpp is not packaged for bookworm), and the format is a
// few lines. Label values are escaped as the format requires (\\, \" and \n).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pipehost::host {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Exposition {
 public:
  // Starts a metric family; every sample of it must follow before the next family.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const Labels& labels, double value);
  void sample(std::string_view name, const Labels& labels, std::uint64_t value);
  void sample(std::string_view name, const Labels& labels, std::int64_t value);
  const std::string& text() const { return out_; }

  // [a-zA-Z_:][a-zA-Z0-9_:]*: anything else becomes '_'.
  static std::string metric_name(std::string_view name);
  static std::string escape_label_value(std::string_view value);
  static std::string number(double value);  // as a label value: "0.005", "1", "2.5"

 private:
  void begin_sample(std::string_view name, const Labels& labels);
  std::string out_;
};

}  // namespace pipehost::host
