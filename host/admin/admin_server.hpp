// The admin HTTP endpoint: /health (alive), /ready (every running pipeline started and
// its stages ready), /metrics (Prometheus text), /pipelines (JSON), POST
// /pipelines/NAME/pause, /resume and /restart, GET and PUT /log-level, the status page
// at / and /logs/recent, GET /pipelines/NAME/tap. Off unless --admin ADDR or `admin = "ADDR"`.
// A web page the operator's browser has open must not be able to drive it: requests
// that change state must be JSON (a cross-site form cannot send that without the
// browser asking first), a loopback endpoint answers only to a loopback Host header (DNS
// rebinding), and `admin_token` requires a bearer token.
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "runtime/pipeline.hpp"
#include "runtime/services.hpp"

namespace httplib {
class Server;
struct Request;
}

namespace pipehost::host {

class AdminServer {
 public:
  using PipelineList = std::vector<std::shared_ptr<Pipeline>>;
  AdminServer(std::function<PipelineList()> pipelines, Services& services);
  ~AdminServer();
  // "host:port"; false with `error` when the address cannot be bound. With a token,
  // every endpoint but /health wants "Authorization: Bearer <token>".
  bool start(const std::string& address, const std::string& token, std::string& error);
  // The endpoint listens before the pipelines are made (a taken port stops the run before
  // anything starts): /ready answers 503 "starting" until this is called.
  void pipelines_started() { pipelines_started_ = true; }

 private:
  void check_every_request();
  void add_reading_routes();
  void add_tap_route();
  void add_control_routes();
  std::string health(int& status) const;
  std::string ready(int& status) const;
  std::string metrics() const;
  std::string pipelines_json() const;
  std::map<std::tuple<std::string, std::string, std::string>, std::int64_t> consumer_lags() const;
  std::shared_ptr<Pipeline> find(const std::string& name) const;
  // Why a request may not be served (403/401 with the reason), or "" when it may.
  std::string refused(const httplib::Request& request, bool changes_state, int& status) const;

  std::function<PipelineList()> pipelines_;  // the pipelines now (a reload replaces them)
  Services& services_;
  std::unique_ptr<httplib::Server> server_;
  std::string token_;
  std::vector<std::string> allowed_hosts_;  // Host headers accepted (loopback binds only)
  std::thread thread_;
  std::atomic<bool> closing_{false};
  std::atomic<bool> pipelines_started_{false};
  std::atomic<int> open_taps_{0};
  static constexpr int kMostTaps = 4;  // of the server's 8 worker threads
};

}  // namespace pipehost::host
