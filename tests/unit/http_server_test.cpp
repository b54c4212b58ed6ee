#include <doctest/doctest.h>

#include "http/exclusive_port.hpp"

using pipehost::host::listen_exclusively;
using pipehost::host::serve_after_bind;

// httplib's stop() is a no-op until listen has begun: a stop right after the start (the
// admin server when [http]'s port was taken a millisecond later) left the join hanging.
TEST_CASE("a server stopped right after serve_after_bind returns ends its thread") {
  for (int i = 0; i < 200; ++i) {
    httplib::Server server;
    listen_exclusively(server);
    int port = server.bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    std::thread serving = serve_after_bind(server);
    server.stop();
    serving.join();
  }
}
