#include "config/diagnostics.hpp"

#include <algorithm>
#include <sstream>

#include <pipehost/edit_distance.hpp>

namespace pipehost::host {

std::string Location::to_string() const {
  if (file.empty()) return "<unknown>";
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

Location location_of(const toml::source_region& region) {
  Location l;
  if (region.path) l.file = *region.path;
  l.line = static_cast<int>(region.begin.line);
  l.column = static_cast<int>(region.begin.column);
  return l;
}

void Diagnostics::add(Location where, std::string pipeline, std::string stage,
                      std::string message) {
  items_.push_back({std::move(where), std::move(pipeline), std::move(stage), std::move(message)});
}

std::string Diagnostics::format() const {
  std::ostringstream out;
  for (const auto& d : items_) {
    out << d.where.to_string() << ": error: ";
    if (!d.pipeline.empty()) out << "pipeline '" << d.pipeline << "'";
    if (!d.stage.empty()) out << (d.pipeline.empty() ? "" : ", ") << d.stage;
    if (!d.pipeline.empty() || !d.stage.empty()) out << ": ";
    out << d.message << "\n";
  }
  return out.str();
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
  std::size_t best = std::max<std::size_t>(2, word.size() / 3) + 1;
  std::string found;
  for (const auto& c : candidates) {
    std::size_t d = edit_distance(word, c);
    if (d < best) {
      best = d;
      found = c;
    }
  }
  return found.empty() ? "" : "did you mean '" + found + "'?";
}

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  if (items.empty()) return "(none)";
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += separator;
    out += items[i];
  }
  return out;
}

}  // namespace pipehost::host
