// cpp-httplib 0.11.4 sets SO_REUSEPORT on the sockets it listens on: a second process
// binding the same port succeeds, and the kernel splits the connections between the two
// (two pipehost processes on one admin or [http] port each answered half the requests).
// A port is one process's: SO_REUSEADDR only, so a restart can bind again at once while
// the old connections sit in TIME_WAIT. Called before bind_to_port.
#pragma once
#include <sys/socket.h>

#include <httplib.h>

namespace pipehost::host {

inline void listen_exclusively(httplib::Server& server) {
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
}

}  // namespace pipehost::host
