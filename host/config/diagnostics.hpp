// Problems found in a config, each with where it is, so all of them can be reported at
// once, compiler style: file:line:column: pipeline X, stage Y: message.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

namespace pipehost::host {

struct Location {
  std::string file;
  int line = 0;
  int column = 0;
  std::string to_string() const;
};

Location location_of(const toml::source_region& region);

struct Diagnostic {
  Location where;
  std::string pipeline;
  std::string stage;
  std::string message;
};

class Diagnostics {
 public:
  void add(Location where, std::string pipeline, std::string stage, std::string message);
  bool empty() const { return items_.empty(); }
  std::size_t size() const { return items_.size(); }
  const std::vector<Diagnostic>& items() const { return items_; }
  std::string format() const;

 private:
  std::vector<Diagnostic> items_;
};

// The candidates closest to `word` (edit distance), for "did you mean ...".
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);
// "a, b, c" for listing allowed values.
std::string join(const std::vector<std::string>& items, std::string_view separator = ", ");

}  // namespace pipehost::host
