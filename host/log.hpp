// Process-wide logging: one line per event on stderr, with time, level and a prefix
// naming the pipeline and stage.
#pragma once
#include <string_view>

#include "pipehost/context.hpp"

namespace pipehost::host {

void set_log_level(LogLevel level);
bool parse_log_level(std::string_view text, LogLevel& out);
bool log_enabled(LogLevel level);
void log_line(LogLevel level, std::string_view prefix, std::string_view message);

inline void log_info(std::string_view m) { log_line(LogLevel::info, "pipehost", m); }
inline void log_warn(std::string_view m) { log_line(LogLevel::warn, "pipehost", m); }
inline void log_error(std::string_view m) { log_line(LogLevel::error, "pipehost", m); }

// Called while a progress line is on the terminal, so a log line can clear it first.
void set_log_interceptor(void (*before_line)());

}  // namespace pipehost::host
