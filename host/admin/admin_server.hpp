// The admin HTTP endpoint: /health, /metrics (Prometheus text), /pipelines (JSON),
// POST /pipelines/NAME/pause and /resume. Off unless --admin ADDR or `admin = "ADDR"`.
#pragma once
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runtime/pipeline.hpp"
#include "runtime/services.hpp"

namespace httplib {
class Server;
}

namespace pipehost::host {

class AdminServer {
 public:
  AdminServer(std::vector<std::unique_ptr<Pipeline>>& pipelines, Services& services);
  ~AdminServer();
  // "host:port"; false with `error` when the address cannot be bound.
  bool start(const std::string& address, std::string& error);

 private:
  std::string health(int& status) const;
  std::string metrics() const;
  std::string pipelines_json() const;
  Pipeline* find(const std::string& name) const;

  std::vector<std::unique_ptr<Pipeline>>& pipelines_;
  Services& services_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace pipehost::host
