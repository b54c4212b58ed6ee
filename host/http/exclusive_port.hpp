// How pipehost's HTTP servers (admin, [http], schema registry) take and serve their port.
#pragma once
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include <httplib.h>

namespace pipehost::host {

// cpp-httplib 0.11.4 sets SO_REUSEPORT on the sockets it listens on: a second process
// binding the same port succeeds, and the kernel splits the connections between the two
// (two pipehost processes on one admin or [http] port each answered half the requests).
// A port is one process's: SO_REUSEADDR only, so a restart can bind again at once while
// the old connections sit in TIME_WAIT. Called before bind_to_port.
inline void listen_exclusively(httplib::Server& server) {
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
}

// Runs listen_after_bind on a thread and returns once the server is running. httplib's
// stop() does nothing until listen has begun, so a stop soon after the start (another
// server failing to bind, a signal at start-up) was lost and joining the thread hung.
inline std::thread serve_after_bind(httplib::Server& server) {
  auto ended = std::make_shared<std::atomic<bool>>(false);
  std::thread serving([&server, ended] {
    server.listen_after_bind();
    *ended = true;
  });
  while (!server.is_running() && !*ended) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return serving;
}

}  // namespace pipehost::host
