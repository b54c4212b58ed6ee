// Process-wide logging: one line per event on stderr, with time, level and a prefix
// naming the pipeline and stage ("pipeline/stage#task", "pipeline#task" or "pipehost").
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "pipehost/context.hpp"

namespace pipehost::host {

void set_log_level(LogLevel level);
LogLevel log_level();
bool parse_log_level(std::string_view text, LogLevel& out);
const char* log_level_name(LogLevel level);  // "debug", "info", "warn", "error"

// text: "18:09:15.518 INFO  [sums/source#0] message". json: one object per line,
// {"time":"2026-12-01T18:09:15.518Z","level":"info","pipeline":"sums","stage":"source",
// "task":0,"message":"..."}, for log shippers (Vector, Fluent Bit, Loki).
enum class LogFormat { text, json };
void set_log_format(LogFormat format);
bool log_enabled(LogLevel level);
void log_line(LogLevel level, std::string_view prefix, std::string_view message);

inline void log_info(std::string_view m) { log_line(LogLevel::info, "pipehost", m); }
inline void log_warn(std::string_view m) { log_line(LogLevel::warn, "pipehost", m); }
inline void log_error(std::string_view m) { log_line(LogLevel::error, "pipehost", m); }

// The last warnings and errors (at most 50, oldest first), for the admin status page.
struct LoggedProblem {
  std::string time;  // UTC, RFC 3339 to the millisecond
  std::string level;
  std::string origin;  // "pipehost" or "pipeline/stage#task"
  std::string message;
};
std::vector<LoggedProblem> recent_problems();

// Called while a progress line is on the terminal, so a log line can clear it first.
void set_log_interceptor(void (*before_line)());

}  // namespace pipehost::host
