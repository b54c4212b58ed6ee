#include "sink_config.hpp"

namespace pipehost::redis {

void RedisSumConfig::declare(OptionList<RedisSumConfig>& o) {
  o.add("url", &RedisSumConfig::url,
        "Redis server: redis://[[user]:password@]host[:port][/db] or host:port")
      .connection("redis");
  o.add("key_field", &RedisSumConfig::key_field,
        "field of the record's value whose text is the total's key")
      .pattern(".+");
  o.add("value_field", &RedisSumConfig::value_field,
        "numeric field of the record's value that is added to the key's total")
      .pattern(".+");
  o.add("layout", &RedisSumConfig::layout,
        "string: one Redis key per total (key_prefix + key); hash: one field per key in the "
        "hash `hash_key`")
      .one_of({"string", "hash"});
  o.add("key_prefix", &RedisSumConfig::key_prefix, "prefix of every total's Redis key (string layout)");
  o.add("hash_key", &RedisSumConfig::hash_key, "the hash holding the totals (hash layout)");
  o.add("scale", &RedisSumConfig::scale,
        "decimals kept exactly: amounts are summed as integers of 10^-scale units and stored "
        "with exactly this many decimals")
      .range(0, 9);
  o.add("positions_key", &RedisSumConfig::positions_key,
        "hash storing each source partition's next offset with the totals (default "
        "pipehost:positions:<pipeline>)");
  o.add("connect_timeout_ms", &RedisSumConfig::connect_timeout_ms,
        "how long to wait for a connection to Redis")
      .range(1, 600000);
  o.add("command_timeout_ms", &RedisSumConfig::command_timeout_ms,
        "how long to wait for a reply before reconnecting and retrying")
      .range(1, 600000);
}

void RedisSumConfig::check(Checker& c) const {
  RedisEndpoint endpoint;
  try {
    endpoint = parse_redis_url(url);
  } catch (const std::exception& e) {
    return c.problem("url", e.what());
  }
  const std::string positions =
      positions_key.value_or("pipehost:positions:" + std::string(c.context().pipeline()));
  if (layout == "hash" && hash_key == positions)
    c.problem("hash_key", "is the positions hash (positions_key): the positions would be written "
                          "over totals of the same names; give the totals another hash");
  if (!c.connect()) return;
  try {
    RedisConnection connection(endpoint, std::chrono::milliseconds(connect_timeout_ms),
                               std::chrono::milliseconds(command_timeout_ms));
    Reply pong = connection.command({"PING"});
    if (is_error(*pong)) connection.throw_error(*pong, "PING");
  } catch (const std::exception& e) {
    const std::string what = e.what();
    const char* fix = what.find(": AUTH failed") != std::string::npos
                          ? " (check the user and password in the url: redis://user:password@host:port/db)"
                      : what.find(": SELECT failed") != std::string::npos
                          ? " (the database number ends the url: redis://host:port/0; the server has fewer)"
                          : " (is it running, and is it Redis? set REDIS_URL, [connections] redis or the "
                            "sink's url; scripts/services start starts one)";
    c.unreachable(what + fix);
  }
}

SinkConfig resolve(const RedisSumConfig& config, std::string_view pipeline) {
  SinkConfig c;
  c.endpoint = parse_redis_url(config.url);
  c.key_field = config.key_field;
  c.value_field = config.value_field;
  c.layout = config.layout == "hash" ? Layout::hash : Layout::string;
  c.key_prefix = config.key_prefix;
  c.hash_key = config.hash_key;
  c.scale = config.scale;
  c.positions_key = config.positions_key.value_or("pipehost:positions:" + std::string(pipeline));
  c.connect_timeout = std::chrono::milliseconds(config.connect_timeout_ms);
  c.command_timeout = std::chrono::milliseconds(config.command_timeout_ms);
  return c;
}

}  // namespace pipehost::redis
