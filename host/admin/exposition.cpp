#include "admin/exposition.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>

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

std::string Exposition::escape_label_value(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string Exposition::number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

void Exposition::family(std::string_view name, std::string_view type, std::string_view help) {
  std::string escaped_help;
  for (char c : help) {
    if (c == '\\') escaped_help += "\\\\";
    else if (c == '\n') escaped_help += "\\n";
    else escaped_help += c;
  }
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += escaped_help;
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void Exposition::begin_sample(std::string_view name, const Labels& labels) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first) out_ += ',';
      first = false;
      out_ += metric_name(k);
      out_ += "=\"";
      out_ += escape_label_value(v);
      out_ += '"';
    }
    out_ += '}';
  }
  out_ += ' ';
}

void Exposition::sample(std::string_view name, const Labels& labels, double value) {
  begin_sample(name, labels);
  if (std::isinf(value)) {
    out_ += value > 0 ? "+Inf" : "-Inf";
  } else if (std::isnan(value)) {
    out_ += "NaN";
  } else {
    char text[32];
    std::snprintf(text, sizeof text, "%.9g", value);
    out_ += text;
  }
  out_ += '\n';
}

void Exposition::sample(std::string_view name, const Labels& labels, std::uint64_t value) {
  begin_sample(name, labels);
  out_ += std::to_string(value);
  out_ += '\n';
}

void Exposition::sample(std::string_view name, const Labels& labels, std::int64_t value) {
  begin_sample(name, labels);
  out_ += std::to_string(value);
  out_ += '\n';
}

}  // namespace pipehost::host
