// A small synchronous Redis client over hiredis: URL parsing, commands from argument
// vectors, and reconnection. Any I/O failure frees the connection and throws
// pipehost::RetriableError; the next command connects again.
#pragma once
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <hiredis/hiredis.h>

namespace pipehost::redis {

struct RedisEndpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string user;      // Redis 6 ACL user; empty: the default user
  std::string password;  // empty: no AUTH
  std::string describe() const;  // "host:port/db", never the password
};

// Accepts "redis://[[user]:password@]host[:port][/db]", "host:port" and "host", with
// IPv6 hosts in brackets. Throws std::invalid_argument naming what is wrong.
RedisEndpoint parse_redis_url(std::string_view url);

struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

inline bool is_error(const redisReply& r) { return r.type == REDIS_REPLY_ERROR; }
inline std::string_view text_of(const redisReply& r) {
  return r.str ? std::string_view(r.str, r.len) : std::string_view();
}

class RedisConnection {
 public:
  RedisConnection(RedisEndpoint endpoint, std::chrono::milliseconds connect_timeout,
                  std::chrono::milliseconds command_timeout);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  const RedisEndpoint& endpoint() const { return endpoint_; }
  bool connected() const { return context_ != nullptr; }

  // Connects (AUTH and SELECT included) unless already connected.
  void connect();
  void disconnect();

  // Runs one command, connecting first if needed. Returns the reply, which may be an
  // error reply (the caller decides what a Redis error means); throws RetriableError
  // when the server cannot be reached or the connection breaks.
  Reply command(const std::vector<std::string>& args);
  Reply command(std::initializer_list<std::string_view> args);

  // Throws for an error reply: RetriableError for a server that is loading, busy, a
  // replica or failing over (then also reconnects), FatalError for anything else
  // (WRONGTYPE, a script error): retrying the same command would fail the same way.
  [[noreturn]] void throw_error(const redisReply& reply, std::string_view what);

 private:
  Reply send(int argc, const char** argv, const std::size_t* lengths);
  [[noreturn]] void fail(const std::string& what);

  RedisEndpoint endpoint_;
  std::chrono::milliseconds connect_timeout_;
  std::chrono::milliseconds command_timeout_;
  redisContext* context_ = nullptr;
};

}  // namespace pipehost::redis
