// "HOST:PORT" as the admin endpoint's address is written (HOST may be "[::1]"), checked
// strictly: a missing or malformed port is an error, not a number atoi made of the host.
#pragma once
#include <string>
#include <string_view>

namespace pipehost::host {

inline bool split_host_port(std::string_view address, std::string& host, int& port) {
  const auto colon = address.rfind(':');
  if (colon == std::string_view::npos) return false;
  const std::string_view digits = address.substr(colon + 1);
  if (digits.empty() || digits.size() > 5) return false;
  int value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  if (value < 1 || value > 65535) return false;
  host = std::string(address.substr(0, colon));
  port = value;
  return true;
}

}  // namespace pipehost::host
