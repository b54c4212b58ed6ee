// A TCP proxy in front of redis-server that can lose a reply: the script runs in Redis
// but the sink never hears back, as when a connection breaks at the worst moment.
#pragma once
#include <atomic>
#include <thread>

namespace pipehost::redis::testing {

class ReplyDropper {
 public:
  explicit ReplyDropper(int redis_port);  // listens on a free port at once
  ~ReplyDropper();
  ReplyDropper(const ReplyDropper&) = delete;
  ReplyDropper& operator=(const ReplyDropper&) = delete;

  int port() const { return port_; }
  // The next reply holding the script's {"ok"} is swallowed and the client's
  // connection closed instead.
  void drop_next_script_reply() { armed_ = true; }
  int dropped() const { return dropped_; }

 private:
  void serve();
  bool pump(int client, int server);  // false when asked to stop

  int redis_port_;
  int port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::atomic<bool> armed_{false};
  std::atomic<int> dropped_{0};
  std::thread thread_;
};

}  // namespace pipehost::redis::testing
