#include "log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>

namespace pipehost::host {
namespace {
std::atomic<int> threshold{static_cast<int>(LogLevel::info)};
std::atomic<void (*)()> interceptor{nullptr};
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
}  // namespace

void set_log_level(LogLevel level) { threshold = static_cast<int>(level); }

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

void log_line(LogLevel level, std::string_view prefix, std::string_view message) {
  if (!log_enabled(level)) return;
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  localtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);
  std::lock_guard lock(output_mutex);
  if (auto f = interceptor.load()) f();
  std::fprintf(stderr, "%s.%03d %s [%.*s] %.*s\n", stamp, static_cast<int>(ms.count()),
               level_name(level), static_cast<int>(prefix.size()), prefix.data(),
               static_cast<int>(message.size()), message.data());
}

}  // namespace pipehost::host
