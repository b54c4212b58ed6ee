#include "admin/admin_server.hpp"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "log.hpp"

#include <algorithm>

namespace pipehost::host {
namespace {

const char* state_of(Pipeline& p) {
  if (p.done()) return p.state().failed() ? "failed" : "ended";
  return p.state().paused ? "paused" : "running";
}

// Prometheus metric names allow [a-zA-Z0-9_:] only.
std::string metric_name(const std::string& name) {
  std::string out = "pipehost_";
  for (char c : name) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

}  // namespace

AdminServer::AdminServer(std::vector<std::unique_ptr<Pipeline>>& pipelines, Services& services)
    : pipelines_(pipelines), services_(services), server_(std::make_unique<httplib::Server>()) {}

AdminServer::~AdminServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

Pipeline* AdminServer::find(const std::string& name) const {
  for (auto& p : pipelines_)
    if (p->config().name == name) return p.get();
  return nullptr;
}

std::string AdminServer::health(int& status) const {
  nlohmann::json out = {{"status", "ok"}, {"pipelines", nlohmann::json::object()}};
  status = 200;
  for (auto& p : pipelines_) {
    out["pipelines"][p->config().name] = state_of(*p);
    if (p->state().failed()) {
      out["status"] = "failing";
      status = 503;
    }
  }
  return out.dump();
}

std::string AdminServer::metrics() const {
  std::string out;
  auto family = [&](const char* name, const char* type, const char* help) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  family("pipehost_records_read_total", "counter", "Records read by the pipeline's sources.");
  for (auto& p : pipelines_)
    out += "pipehost_records_read_total{pipeline=\"" + p->config().name + "\"} " +
           std::to_string(p->state().records_read.load()) + "\n";
  family("pipehost_records_acknowledged_total", "counter", "Records the sink confirmed.");
  for (auto& p : pipelines_)
    out += "pipehost_records_acknowledged_total{pipeline=\"" + p->config().name + "\"} " +
           std::to_string(p->state().records_acked.load()) + "\n";
  family("pipehost_records_rejected_total", "counter", "Records rejected by a stage.");
  for (auto& p : pipelines_)
    out += "pipehost_records_rejected_total{pipeline=\"" + p->config().name + "\"} " +
           std::to_string(p->state().records_rejected.load()) + "\n";
  family("pipehost_latency_ms", "gauge", "Record timestamp to sink acknowledgement, by quantile.");
  for (auto& p : pipelines_) {
    const LatencyHistogram& l = p->state().latency;
    if (l.count() == 0) continue;
    for (auto [q, label] : {std::pair{0.5, "0.5"}, {0.99, "0.99"}, {0.999, "0.999"}})
      out += "pipehost_latency_ms{pipeline=\"" + p->config().name + "\",quantile=\"" + label +
             "\"} " + std::to_string(l.percentile(q)) + "\n";
  }
  for (const auto& [name, value] : services_.metrics.snapshot())
    out += metric_name(name) + "_total " + std::to_string(value) + "\n";
  return out;
}

std::string AdminServer::pipelines_json() const {
  nlohmann::json out = nlohmann::json::array();
  for (auto& p : pipelines_) {
    PipelineState& s = p->state();
    out.push_back({{"name", s.name},
                   {"state", state_of(*p)},
                   {"tasks", p->config().tasks},
                   {"source", p->config().source.plugin},
                   {"sink", p->config().sink.plugin},
                   {"records_read", s.records_read.load()},
                   {"records_acknowledged", s.records_acked.load()},
                   {"records_rejected", s.records_rejected.load()},
                   {"failure", s.failed() ? s.failure_message() : ""}});
  }
  return out.dump(2);
}

std::string AdminServer::refused(const httplib::Request& req, bool changes_state, int& status) const {
  if (!allowed_hosts_.empty()) {
    std::string host = req.get_header_value("Host");
    if (std::find(allowed_hosts_.begin(), allowed_hosts_.end(), host) == allowed_hosts_.end()) {
      status = 403;
      return "Host '" + host + "' is not this loopback endpoint";
    }
  }
  if (!token_.empty() && req.get_header_value("Authorization") != "Bearer " + token_) {
    status = 401;
    return "this endpoint wants \"Authorization: Bearer <admin_token>\"";
  }
  if (changes_state && req.get_header_value("Content-Type").rfind("application/json", 0) != 0) {
    status = 415;
    return "send Content-Type: application/json (e.g. curl -X POST -H 'Content-Type: "
           "application/json' -d '{}' URL)";
  }
  return "";
}

bool AdminServer::start(const std::string& address, const std::string& token, std::string& error) {
  auto colon = address.rfind(':');
  std::string host = colon == std::string::npos ? "127.0.0.1" : address.substr(0, colon);
  int port = std::atoi(address.substr(colon == std::string::npos ? 0 : colon + 1).c_str());
  if (port <= 0 || port > 65535) {
    error = "admin address '" + address + "' needs a port, e.g. 127.0.0.1:9464";
    return false;
  }
  token_ = token;
  if (host == "127.0.0.1" || host == "localhost" || host == "::1" || host == "[::1]") {
    for (const char* name : {"127.0.0.1", "localhost", "[::1]"})
      allowed_hosts_.push_back(std::string(name) + ":" + std::to_string(port));
  }
  // Every request passes the checks first; /health stays open for probes.
  server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/health" && req.method == "GET") return httplib::Server::HandlerResponse::Unhandled;
    int status = 200;
    std::string why = refused(req, req.method != "GET" && req.method != "HEAD", status);
    if (why.empty()) return httplib::Server::HandlerResponse::Unhandled;
    res.status = status;
    res.set_content(nlohmann::json{{"error", why}}.dump(), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  });
  server_->Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    int status = 200;
    res.set_content(health(status), "application/json");
    res.status = status;
  });
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics(), "text/plain; version=0.0.4");
  });
  server_->Get("/pipelines", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(pipelines_json(), "application/json");
  });
  server_->Post(R"(/pipelines/([^/]+)/(pause|resume))",
                [this](const httplib::Request& req, httplib::Response& res) {
                  Pipeline* p = find(req.matches[1]);
                  if (!p) {
                    res.status = 404;
                    res.set_content("{\"error\":\"no such pipeline\"}", "application/json");
                    return;
                  }
                  p->state().paused = req.matches[2] == "pause";
                  log_info("admin: pipeline '" + p->config().name + "' " +
                           (p->state().paused ? "paused" : "resumed"));
                  res.set_content(pipelines_json(), "application/json");
                });
  server_->set_keep_alive_timeout(1);  // so stopping does not wait on idle clients
  if (!server_->bind_to_port(host, port)) {
    error = "cannot listen on " + address + " for the admin endpoint (in use?)";
    return false;
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  log_info("admin endpoint on http://" + host + ":" + std::to_string(port) +
           " (/health, /metrics, /pipelines)");
  return true;
}

}  // namespace pipehost::host
