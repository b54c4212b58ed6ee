// What the postgres sink's files share: connection settings, SQL text helpers and the
// table layout read from the catalog.
#pragma once
#include <pqxx/pqxx>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "postgres_sink.hpp"
#include "table_layout.hpp"

namespace pipehost::postgres {

// The URL with a connect timeout and, unless it sets them, TCP keepalives: a server gone
// without a reset (a host powered off, a dropped route) is found in ~30 s, where the
// system's keepalive takes two hours and a write waited that long.
std::string with_timeout(const std::string& url, int timeout_ms);

inline std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : separator) + i;
  return out;
}

inline std::string position_key(std::string_view topic, std::int32_t partition) {
  return std::string(topic) + ":" + std::to_string(partition);
}

// The server's message without its "ERROR:  " prefix, on one line: the message, then
// its DETAIL (e.g. the failing row), shortened.
std::string server_message(std::string text);

// "{column}" placeholders of a log_each template, in order.
std::vector<std::string> placeholders(const std::string& text);

// The table's columns (in order, each with the field it takes) and primary key, read
// from the catalog. What of the config the table contradicts goes to `problem(option,
// message)`: at start it stops the sink, in a check it is reported at the option.
TableLayout read_layout(pqxx::transaction_base& tx, const PostgresConfig& config,
                        const std::function<void(const char*, const std::string&)>& problem);

}  // namespace pipehost::postgres
