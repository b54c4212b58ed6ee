#include "sink_config.hpp"

namespace pipehost::redis {

std::vector<OptionSpec> sink_options() {
  using T = OptionType;
  return {
      option("url", T::string, std::string("redis://127.0.0.1:6379"),
             "Redis server: redis://[[user]:password@]host[:port][/db] or host:port"),
      option("key_field", T::string, std::string("account_number"),
             "field of the record's value whose text is the total's key"),
      option("value_field", T::string, std::string("amount"),
             "numeric field of the record's value that is added to the key's total"),
      with_allowed(option("layout", T::string, std::string("string"),
                          "string: one Redis key per total (key_prefix + key); hash: one "
                          "field per key in the hash `hash_key`"),
                   {"string", "hash"}),
      option("key_prefix", T::string, std::string(""),
             "prefix of every total's Redis key (string layout)"),
      option("hash_key", T::string, std::string("totals"),
             "the hash holding the totals (hash layout)"),
      with_range(option("scale", T::integer, std::int64_t{2},
                        "decimals kept exactly: amounts are summed as integers of "
                        "10^-scale units and stored with exactly this many decimals"),
                 0, 9),
      optional_option("positions_key", T::string,
                      "hash storing each source partition's next offset with the totals "
                      "(default pipehost:positions:<pipeline>)"),
      with_range(option("connect_timeout_ms", T::integer, std::int64_t{2000},
                        "how long to wait for a connection to Redis"),
                 1, 600000),
      with_range(option("command_timeout_ms", T::integer, std::int64_t{5000},
                        "how long to wait for a reply before reconnecting and retrying"),
                 1, 600000),
  };
}

const char* const kSinkExample = R"toml([pipelines.transactions.sink]
plugin = "redis_sum"
url = "redis://127.0.0.1:6379/0"
key_field = "account_number"
value_field = "amount"
layout = "string"
scale = 2
)toml";

SinkConfig make_sink_config(const Options& options, std::string_view pipeline) {
  SinkConfig c;
  c.endpoint = parse_redis_url(options.string("url"));
  c.key_field = options.string("key_field");
  c.value_field = options.string("value_field");
  c.layout = options.string("layout") == "hash" ? Layout::hash : Layout::string;
  c.key_prefix = options.string("key_prefix");
  c.hash_key = options.string("hash_key");
  c.scale = static_cast<int>(options.integer("scale"));
  if (c.scale < 0 || c.scale > 9) throw std::invalid_argument("scale must be from 0 to 9");
  c.positions_key = options.has("positions_key") ? options.string("positions_key")
                                                 : "pipehost:positions:" + std::string(pipeline);
  c.connect_timeout = std::chrono::milliseconds(options.integer("connect_timeout_ms"));
  c.command_timeout = std::chrono::milliseconds(options.integer("command_timeout_ms"));
  if (c.key_field.empty() || c.value_field.empty())
    throw std::invalid_argument("key_field and value_field must not be empty");
  return c;
}

}  // namespace pipehost::redis
