// A real redis-server for the behaviour tests: started as a child process on a free
// port in a private directory, killed and removed at the end.
#pragma once
#include <string>
#include <vector>
#include <sys/types.h>

namespace pipehost::redis::testing {

class RedisServer {
 public:
  // Starts it, with extra redis-server arguments, and waits until it answers PING.
  explicit RedisServer(std::vector<std::string> extra_args = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  // SHUTDOWN SAVE: the data goes to disk and the process exits (waited for).
  void shutdown();
  // Starts again on the same port and directory, with the data saved by shutdown().
  void restart();

 private:
  void spawn();
  bool answers_ping() const;
  void kill_now();

  std::vector<std::string> extra_args_;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace pipehost::redis::testing
