// The [http] server of a config: each [[http.routes]] entry is a route component of a
// plugin (e.g. sqlite_query answering GET /aggregated) mounted at its path.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/model.hpp"
#include "runtime/services.hpp"

namespace httplib {
class Server;
}

namespace pipehost::host {

class RouteServer {
 public:
  RouteServer(const HttpConfig& config, Services& services);
  ~RouteServer();
  RouteServer(const RouteServer&) = delete;
  RouteServer& operator=(const RouteServer&) = delete;

  // Builds and starts every route, then listens. False with `error` naming the route or
  // the address when one cannot be used.
  bool start(std::string& error);

 private:
  struct Mounted;
  const HttpConfig& config_;
  Services& services_;
  std::vector<std::unique_ptr<Mounted>> routes_;
  std::map<std::string, Mounted*, std::less<>> by_path_;  // the routes by their exact path
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace pipehost::host
