// The redis_sum sink's options (declared once, typed) and the settings it runs with.
#pragma once
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <pipehost/sdk.hpp>

#include "redis_connection.hpp"

namespace pipehost::redis {

struct RedisSumConfig {
  std::string url = "redis://127.0.0.1:6379";
  std::string key_field = "account_number";
  std::string value_field = "amount";
  std::string layout = "string";
  std::string key_prefix;
  std::string hash_key = "totals";
  int scale = 2;
  std::optional<std::string> positions_key;
  int connect_timeout_ms = 2000;
  int command_timeout_ms = 5000;

  static void declare(OptionList<RedisSumConfig>& o);
  void check(Checker& c) const;
};

enum class Layout { string, hash };

// What the sink runs with: the options resolved (the url parsed, the positions key named).
struct SinkConfig {
  RedisEndpoint endpoint;
  std::string key_field;
  std::string value_field;
  Layout layout = Layout::string;
  std::string key_prefix;
  std::string hash_key;
  int scale = 2;
  std::string positions_key;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds command_timeout{5000};
};

// Throws std::invalid_argument for a url that does not parse.
SinkConfig resolve(const RedisSumConfig& config, std::string_view pipeline);

}  // namespace pipehost::redis
