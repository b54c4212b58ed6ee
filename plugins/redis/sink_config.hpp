// The redis_sum sink's declaration (options, example) and its validated configuration.
#pragma once
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <pipehost/options.hpp>

#include "redis_connection.hpp"

namespace pipehost::redis {

enum class Layout { string, hash };

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

std::vector<OptionSpec> sink_options();

// A stage table that validates, shown by `pipehost plugins redis_sum`.
extern const char* const kSinkExample;

// Builds the configuration from options the host has validated against sink_options().
// Throws std::invalid_argument for what the declaration cannot express (a bad url).
SinkConfig make_sink_config(const Options& options, std::string_view pipeline);

}  // namespace pipehost::redis
