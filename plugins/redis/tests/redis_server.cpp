#include "redis_server.hpp"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

extern char** environ;

namespace pipehost::redis::testing {
namespace {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error("cannot find a free port");
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

RedisServer::RedisServer(std::vector<std::string> extra_args) : extra_args_(std::move(extra_args)) {
  char tmpl[] = "/tmp/redis_sum_test.XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  for (int attempt = 0;; ++attempt) {  // another process may grab the port in between
    port_ = free_port();
    try {
      spawn();
      return;
    } catch (const std::exception&) {
      if (attempt == 4) throw;
    }
  }
}

RedisServer::~RedisServer() {
  kill_now();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void RedisServer::spawn() {
  std::string port = std::to_string(port_);
  std::string log = dir_ + "/redis.log";
  std::vector<std::string> args{"redis-server", "--port",      port,    "--bind",
                                "127.0.0.1",    "--save",      "",      "--appendonly",
                                "no",           "--daemonize", "no",    "--dir",
                                dir_,           "--logfile",   log};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (::posix_spawnp(&pid_, "redis-server", nullptr, nullptr, argv.data(), environ) != 0)
    throw std::runtime_error("cannot start redis-server");
  // Bounded polling until it answers: the only waiting the tests do.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("redis-server exited at start; see " + log);
    }
    if (answers_ping()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill_now();
  throw std::runtime_error("redis-server did not answer PING within 10 s");
}

bool RedisServer::answers_ping() const {
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, timeval{0, 200000});
  bool ok = false;
  if (c && !c->err) {
    auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
    // PONG, or NOAUTH from a server that wants a password: either way it serves.
    ok = r && (r->type == REDIS_REPLY_STATUS || std::string_view(r->str).starts_with("NOAUTH"));
    if (r) freeReplyObject(r);
  }
  if (c) redisFree(c);
  return ok;
}

void RedisServer::shutdown() {
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, timeval{2, 0});
  if (c && !c->err) {
    auto* r = static_cast<redisReply*>(redisCommand(c, "SHUTDOWN SAVE"));  // no reply: it exits
    if (r) freeReplyObject(r);
  }
  if (c) redisFree(c);
  int status = 0;
  if (pid_ > 0) ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

void RedisServer::restart() {
  if (pid_ > 0) throw std::logic_error("redis-server is still running");
  spawn();
}

void RedisServer::kill_now() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

}  // namespace pipehost::redis::testing
