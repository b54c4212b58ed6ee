#include "log.hpp"

#include "pipehost/json.hpp"
#include "pipehost/utf8.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <mutex>
#include <string>

namespace pipehost::host {
namespace {
std::atomic<int> threshold{static_cast<int>(LogLevel::info)};
std::atomic<void (*)()> interceptor{nullptr};
std::atomic<LogFormat> format{LogFormat::text};
std::mutex problems_mutex;
std::deque<LoggedProblem> problems;  // the last 50 warnings and errors
std::mutex output_mutex;

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "DEBUG";
    case LogLevel::info: return "INFO ";
    case LogLevel::warn: return "WARN ";
    case LogLevel::error: return "ERROR";
  }
  return "?";
}
// A message as a reader can trust it: bytes that are not UTF-8 become \xHH (a JSON line
// stays valid JSON), and in text lines control characters are escaped too (a record's
// value holding "\n02:00:00.000 ERROR ..." cannot forge a line, nor an ESC sequence reach
// a terminal). Most messages need nothing and are not copied.
std::string_view trustworthy(std::string_view message, bool escape_controls, std::string& scratch) {
  auto control = [&](unsigned char c) { return escape_controls && (c < 0x20 || c == 0x7f); };
  bool clean = utf8::valid(message);
  for (std::size_t i = 0; clean && i < message.size(); ++i) clean = !control(static_cast<unsigned char>(message[i]));
  if (clean) return message;
  scratch.clear();
  for (std::size_t i = 0; i < message.size();) {
    const auto c = static_cast<unsigned char>(message[i]);
    const std::size_t length = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    if (length > 1 && i + length <= message.size() && utf8::valid(message.substr(i, length))) {
      scratch.append(message, i, length);
      i += length;
      continue;
    }
    char hex[8];
    if (control(c) && c == '\n') scratch += "\\n";
    else if (control(c) && c == '\r') scratch += "\\r";
    else if (control(c) && c == '\t') scratch += "\\t";
    else if (length != 1 || control(c)) std::snprintf(hex, sizeof hex, "\\x%02x", c), scratch += hex;
    else scratch += static_cast<char>(c);
    ++i;
  }
  return scratch;
}

void append_json_string(std::string& out, std::string_view text) {
  std::string scratch;
  json::append_string(trustworthy(text, false, scratch), out);
}

// "sums/source#0" -> pipeline sums, stage source, task 0; "sums#1" -> pipeline, task;
// "pipehost" -> the host itself.
void append_json_origin(std::string& out, std::string_view prefix) {
  if (prefix == "pipehost") {
    out += ",\"component\":\"pipehost\"";
    return;
  }
  std::string_view task;
  if (auto hash = prefix.rfind('#'); hash != std::string_view::npos) {
    task = prefix.substr(hash + 1);
    prefix = prefix.substr(0, hash);
  }
  std::string_view stage;
  if (auto slash = prefix.find('/'); slash != std::string_view::npos) {
    stage = prefix.substr(slash + 1);
    prefix = prefix.substr(0, slash);
  }
  out += ",\"pipeline\":";
  append_json_string(out, prefix);
  if (!stage.empty()) {
    out += ",\"stage\":";
    append_json_string(out, stage);
  }
  if (!task.empty() && task.find_first_not_of("0123456789") == std::string_view::npos) {
    out += ",\"task\":";
    out += task;
  }
}
}  // namespace

void set_log_level(LogLevel level) { threshold = static_cast<int>(level); }
LogLevel log_level() { return static_cast<LogLevel>(threshold.load()); }
void set_log_format(LogFormat f) { format = f; }

const char* log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
  }
  return "?";
}

bool parse_log_level(std::string_view text, LogLevel& out) {
  if (text == "debug") out = LogLevel::debug;
  else if (text == "info") out = LogLevel::info;
  else if (text == "warn") out = LogLevel::warn;
  else if (text == "error") out = LogLevel::error;
  else return false;
  return true;
}

bool log_enabled(LogLevel level) { return static_cast<int>(level) >= threshold.load(); }

void set_log_interceptor(void (*before_line)()) { interceptor = before_line; }

std::vector<LoggedProblem> recent_problems() {
  std::lock_guard lock(problems_mutex);
  return {problems.begin(), problems.end()};
}

void log_line(LogLevel level, std::string_view prefix, std::string_view message) {
  if (!log_enabled(level) && level < LogLevel::warn) return;
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  char stamp[32];
  if (level >= LogLevel::warn) {
    gmtime_r(&t, &tm);
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    char millis[8];
    std::snprintf(millis, sizeof millis, ".%03dZ", static_cast<int>(ms.count()));
    std::lock_guard lock(problems_mutex);
    problems.push_back({std::string(stamp) + millis, log_level_name(level), std::string(prefix),
                        std::string(message.substr(0, 2000))});
    if (problems.size() > 50) problems.pop_front();
  }
  if (!log_enabled(level)) return;
  if (format.load() == LogFormat::json) {
    gmtime_r(&t, &tm);
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    std::string line = "{\"time\":\"";
    line += stamp;
    char millis[8];
    std::snprintf(millis, sizeof millis, ".%03dZ", static_cast<int>(ms.count()));
    line += millis;
    line += "\",\"level\":\"";
    line += log_level_name(level);
    line += '"';
    append_json_origin(line, prefix);
    line += ",\"message\":";
    append_json_string(line, message);
    line += "}\n";
    std::lock_guard lock(output_mutex);
    if (auto f = interceptor.load()) f();
    std::fwrite(line.data(), 1, line.size(), stderr);
    return;
  }
  localtime_r(&t, &tm);
  std::strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);
  std::string scratch;
  message = trustworthy(message, true, scratch);
  std::lock_guard lock(output_mutex);
  if (auto f = interceptor.load()) f();
  std::fprintf(stderr, "%s.%03d %s [%.*s] %.*s\n", stamp, static_cast<int>(ms.count()),
               level_name(level), static_cast<int>(prefix.size()), prefix.data(),
               static_cast<int>(message.size()), message.data());
}

}  // namespace pipehost::host
