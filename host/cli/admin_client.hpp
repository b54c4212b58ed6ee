// A client of a running pipehost's admin endpoint, for `tap` and `top`: HOST:PORT, and
// the bearer token from PIPEHOST_ADMIN_TOKEN when set.
#pragma once
#include <httplib.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "admin/host_port.hpp"

namespace pipehost::host {

struct AdminClient {
  std::unique_ptr<httplib::Client> client;  // null when the address has no port
  httplib::Headers headers;
};

inline AdminClient admin_client(const std::string& address) {
  AdminClient out;
  std::string host;
  int port = 0;
  if (!split_host_port(address, host, port)) return out;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);  // [::1]
  out.client = std::make_unique<httplib::Client>(host, port);
  if (const char* token = std::getenv("PIPEHOST_ADMIN_TOKEN"))
    out.headers.emplace("Authorization", std::string("Bearer ") + token);
  return out;
}

// What to do about a refused request (401): the token the endpoint wants.
inline std::string token_hint(int status) {
  if (status != 401) return "";
  return std::getenv("PIPEHOST_ADMIN_TOKEN")
             ? " (PIPEHOST_ADMIN_TOKEN is not the process's admin_token)"
             : " (the process has an admin_token: export PIPEHOST_ADMIN_TOKEN=<that token>)";
}

}  // namespace pipehost::host
