// The fourth family of components: an HTTP route, mounted on the host's HTTP server by
// the [http] section of a config (e.g. GET /aggregated answered from a database). Built
// as T(const T::Config&, Context&) like the others; handle() may be called from several
// threads at once.
#pragma once
#include <map>
#include <string>

#include "pipehost/abi.hpp"

namespace pipehost {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;
  std::map<std::string, std::string> query;  // ?name=value
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

class PIPEHOST_EXPORT Route {
 public:
  virtual ~Route() = default;
  virtual void start() {}
  // Throw to answer 500 with the message; InvalidRecord answers 400.
  virtual HttpResponse handle(const HttpRequest& request) = 0;
  virtual void stop() {}
};

}  // namespace pipehost
