#include "reply_dropper.hpp"

#include <stdexcept>
#include <string_view>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace pipehost::redis::testing {
namespace {

sockaddr_in loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  return addr;
}

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

ReplyDropper::ReplyDropper(int redis_port) : redis_port_(redis_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = loopback(0);
  socklen_t len = sizeof addr;
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 4) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      ::pipe(wake_) != 0)
    throw std::runtime_error("reply dropper: cannot listen");
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { serve(); });
}

ReplyDropper::~ReplyDropper() {
  char stop = 1;
  (void)!::write(wake_[1], &stop, 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void ReplyDropper::serve() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 || fds[1].revents) return;
    int client = ::accept(listen_fd_, nullptr, nullptr);
    if (client < 0) continue;
    int server = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = loopback(redis_port_);
    bool go_on = true;
    if (::connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
      go_on = pump(client, server);
    ::close(client);
    ::close(server);
    if (!go_on) return;
  }
}

bool ReplyDropper::pump(int client, int server) {
  char buf[1 << 16];
  for (;;) {
    pollfd fds[3] = {{client, POLLIN, 0}, {server, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0 || fds[2].revents) return false;
    if (fds[0].revents) {
      ssize_t n = ::read(client, buf, sizeof buf);
      if (n <= 0 || !write_all(server, buf, static_cast<std::size_t>(n))) return true;
    }
    if (fds[1].revents) {
      ssize_t n = ::read(server, buf, sizeof buf);
      if (n <= 0) return true;
      std::string_view reply(buf, static_cast<std::size_t>(n));
      if (armed_ && reply.find("$2\r\nok\r\n") != std::string_view::npos) {
        armed_ = false;
        ++dropped_;
        return true;  // closing the client: the reply is lost
      }
      if (!write_all(client, buf, static_cast<std::size_t>(n))) return true;
    }
  }
}

}  // namespace pipehost::redis::testing
