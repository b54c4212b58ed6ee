#include "admin/admin_server.hpp"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <map>
#include <tuple>

#include "admin/host_port.hpp"
#include "admin/status_page.hpp"
#include "http/empty_body.hpp"
#include "http/exclusive_port.hpp"
#include "log.hpp"

namespace pipehost::host {
namespace {

// Names from a URL (%FF) and failure messages may hold invalid UTF-8: replaced, not thrown.
std::string json_text(const nlohmann::json& value, int indent = -1) {
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}
std::string error_json(const std::string& why) { return json_text(nlohmann::json{{"error", why}}); }
// A tap ends after this at the latest, records or not: it holds one of the server's threads.
constexpr long kLongestTapMs = 3'600'000;
// Admin requests carry small JSON bodies; a larger one gets 413 without being read.
constexpr std::size_t kMostBodyBytes = 64 << 10;

const char* state_of(Pipeline& p) {
  if (p.done()) return p.state().failed() ? "failed" : "ended";
  if (p.state().restarting) return "restarting";
  return p.state().paused ? "paused" : "running";
}

}  // namespace

AdminServer::AdminServer(std::function<PipelineList()> pipelines, Services& services)
    : pipelines_(std::move(pipelines)), services_(services), server_(std::make_unique<httplib::Server>()) {}

AdminServer::~AdminServer() {
  closing_ = true;  // open taps end their responses
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<Pipeline> AdminServer::find(const std::string& name) const {
  for (auto& p : pipelines_())
    if (p->config().name == name) return p;
  return nullptr;
}

std::string AdminServer::health(int& status) const {
  nlohmann::json out = {{"status", "ok"}, {"pipelines", nlohmann::json::object()}};
  status = 200;
  for (auto& p : pipelines_()) {
    out["pipelines"][p->config().name] = state_of(*p);
    // A pipeline that restarts by itself is not a reason to restart the process: one
    // waiting to, or still draining its tasks after the failure (restart_attempts left).
    const bool restarts = p->state().restarting ||
                          (!p->done() && p->config().restart_attempts > 0 && !p->state().failure_logged);
    if (p->state().failed() && !restarts) {
      out["status"] = "failing";
      status = 503;
    }
  }
  return json_text(out);
}

// Ready: every pipeline still running has all its tasks started and no stage waiting
// (a consumer not yet assigned by its group, a sink not yet connected). Pipelines that
// ended do not count against it; a failed one does.
std::string AdminServer::ready(int& status) const {
  nlohmann::json out = {{"ready", true}, {"pipelines", nlohmann::json::object()}};
  status = 200;
  if (!pipelines_started_) {  // no pipeline listed yet: not "all ready"
    out["ready"] = false;
    out["starting"] = true;
    status = 503;
    return json_text(out);
  }
  for (auto& p : pipelines_()) {
    PipelineState& s = p->state();
    std::string why;
    if (s.failed()) why = (s.restarting ? "restarting after: " : "failed: ") + s.failure_message();
    else if (p->done()) why = "";
    else if (s.paused) why = "";
    else if (s.tasks_started.load() < p->config().tasks)
      why = "starting: " + std::to_string(s.tasks_started.load()) + " of " +
            std::to_string(p->config().tasks) + " tasks running";
    else if (s.stages_not_ready.load() > 0)
      why = std::to_string(s.stages_not_ready.load()) + " stage(s) waiting (e.g. for partitions)";
    out["pipelines"][s.name] = why.empty() ? nlohmann::json("ready") : nlohmann::json(why);
    if (!why.empty()) {
      out["ready"] = false;
      status = 503;
    }
  }
  return json_text(out);
}

// The Kafka sources' consumer_lag gauges: (pipeline, topic, partition) -> records.
std::map<std::tuple<std::string, std::string, std::string>, std::int64_t> AdminServer::consumer_lags() const {
  std::map<std::tuple<std::string, std::string, std::string>, std::int64_t> out;
  for (const auto& [key, value] : services_.metrics.gauges()) {
    if (key.name != "consumer_lag") continue;
    std::string topic, partition;
    for (const auto& [k, v] : key.labels) {
      if (k == "topic") topic = v;
      else if (k == "partition") partition = v;
    }
    out[{key.pipeline, topic, partition}] = value;
  }
  return out;
}

std::string AdminServer::pipelines_json() const {
  // Lag per pipeline: the sum of its partitions' (Kafka sources).
  std::map<std::string, std::int64_t> lag;
  for (const auto& [where, value] : consumer_lags()) lag[std::get<0>(where)] += value;
  nlohmann::json out = nlohmann::json::array();
  for (auto& p : pipelines_()) {
    PipelineState& s = p->state();
    std::uint64_t in_flight = 0;
    for (const auto& t : s.in_flight_records) in_flight += t.load();
    nlohmann::json stages = nlohmann::json::array();
    for (const StageStats& st : s.stages)
      stages.push_back({{"stage", st.label},
                        {"records_in", st.records_in.load()},
                        {"records_out", &st == &s.stages.back() ? s.records_acked.load() : st.records_out.load()},
                        {"records_rejected", st.records_rejected.load()},
                        {"cpu_seconds", static_cast<double>(st.cpu_ns.load()) / 1e9}});
    auto l = lag.find(s.name);
    out.push_back({{"name", s.name},
                   {"state", state_of(*p)},
                   {"tasks", p->config().tasks},
                   {"source", p->config().source.plugin},
                   {"sink", p->config().sink.plugin},
                   {"records_read", s.records_read.load()},
                   {"records_acknowledged", s.records_acked.load()},
                   {"records_rejected", s.records_rejected.load()},
                   {"records_dead_lettered", s.records_dead_lettered.load()},
                   {"in_flight_records", in_flight},
                   {"lag", l == lag.end() ? nlohmann::json(nullptr) : nlohmann::json(l->second)},
                   {"failure", s.failed() ? s.failure_message() : ""},
                   {"restarts", s.restarts.load()},
                   {"stalled", s.current_stall()},
                   {"last_failure", s.last_failure_message()},
                   {"stages", stages}});
  }
  return json_text(out, 2);
}

std::string AdminServer::refused(const httplib::Request& req, bool changes_state, int& status) const {
  const auto lower = [](std::string text) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
  };
  if (!allowed_hosts_.empty()) {
    std::string host = req.get_header_value("Host");
    if (std::find(allowed_hosts_.begin(), allowed_hosts_.end(), lower(host)) == allowed_hosts_.end()) {
      status = 403;
      return "Host '" + host + "' is not this loopback endpoint";
    }
  }
  // The scheme is case-insensitive (RFC 9110), the token is not.
  const std::string authorization = req.get_header_value("Authorization");
  if (!token_.empty() &&
      (authorization.size() < 7 || lower(authorization.substr(0, 7)) != "bearer " || authorization.substr(7) != token_)) {
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
  std::string host;
  int port = 0;
  if (!split_host_port(address, host, port)) {
    error = "admin address '" + address + "' is not HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:9464";
    return false;
  }
  token_ = token;
  if (host == "127.0.0.1" || host == "localhost" || host == "::1" || host == "[::1]") {
    for (const char* name : {"127.0.0.1", "localhost", "[::1]"})
      allowed_hosts_.push_back(std::string(name) + ":" + std::to_string(port));
  }
  check_every_request();
  add_reading_routes();
  add_tap_route();
  add_control_routes();
  server_->set_keep_alive_timeout(1);  // so stopping does not wait on idle clients
  server_->set_payload_max_length(kMostBodyBytes);
  listen_exclusively(*server_);
  // "[::1]" is how an IPv6 host is written before a port; the resolver wants it bare.
  const std::string bind_host =
      host.size() > 2 && host.front() == '[' && host.back() == ']' ? host.substr(1, host.size() - 2) : host;
  if (!server_->bind_to_port(bind_host, port)) {
    error = "cannot listen on " + address + " for the admin endpoint (in use?)";
    return false;
  }
  thread_ = serve_after_bind(*server_);
  log_info("admin endpoint on http://" + host + ":" + std::to_string(port) +
           " (status page at /; /health, /ready, /metrics, /pipelines, /log-level)");
  return true;
}

// Every request passes the checks first; /health stays open for probes.
void AdminServer::check_every_request() {
  server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    no_length_means_no_body(req);
    if (refuse_chunked_body(req, res)) return httplib::Server::HandlerResponse::Handled;
    if (req.ranges.size() > 1) {  // httplib would send one copy of the body per range
      res.status = 416;
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.method != "GET" && req.method != "HEAD" && req.method != "POST" && req.method != "PUT") {
      res.status = 405;
      res.set_header("Allow", "GET, HEAD, POST, PUT");
      res.set_content(error_json(req.method + " is not served here: GET reads, POST "
                                 "/pipelines/NAME/pause|resume|restart and PUT /log-level change"),
                      "application/json");
      return httplib::Server::HandlerResponse::Handled;
    }
    // Probes, and the status page's HTML (no data in it: its requests carry the token).
    if ((req.path == "/health" || req.path == "/ready" || req.path == "/") && req.method == "GET")
      return httplib::Server::HandlerResponse::Unhandled;
    int status = 200;
    std::string why = refused(req, req.method != "GET" && req.method != "HEAD", status);
    if (why.empty()) return httplib::Server::HandlerResponse::Unhandled;
    res.status = status;
    res.set_content(error_json(why), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  });
  // Errors httplib answers itself (a body it could not read, no such path) say why too.
  server_->set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string why;
    if (res.status == 400)
      why = "the request's body could not be read: a " + req.method +
            " needs one with its Content-Length (e.g. curl -X POST -H 'Content-Type: application/json' "
            "-d '{}' URL)";
    else if (res.status == 404)
      why = "no such endpoint: " + req.path + " (the endpoints are listed in docs/operations.md)";
    else
      why = "HTTP " + std::to_string(res.status);
    res.set_content(error_json(why), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
}

// What GET reads: health, readiness, logs, the log level, metrics, pipelines, positions.
void AdminServer::add_reading_routes() {
  server_->Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    int status = 200;
    res.set_content(health(status), "application/json");
    res.status = status;
  });
  server_->Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kStatusPage, "text/html; charset=utf-8");
  });
  server_->Get("/logs/recent", [](const httplib::Request&, httplib::Response& res) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& p : recent_problems())
      out.push_back({{"time", p.time}, {"level", p.level}, {"origin", p.origin}, {"message", p.message}});
    // Messages may quote record bytes: invalid UTF-8 is replaced, not thrown on.
    res.set_content(json_text(out), "application/json");
  });
  server_->Get("/ready", [this](const httplib::Request&, httplib::Response& res) {
    int status = 200;
    res.set_content(ready(status), "application/json");
    res.status = status;
  });
  server_->Get("/log-level", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(json_text(nlohmann::json{{"level", log_level_name(log_level())}}), "application/json");
  });
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics(), "text/plain; version=0.0.4");
  });
  server_->Get("/pipelines", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(pipelines_json(), "application/json");
  });
  // Where each source partition is: acknowledged (handed to the source to commit) and lag.
  server_->Get(R"(/pipelines/([^/]+)/positions)", [this](const httplib::Request& req, httplib::Response& res) {
    std::shared_ptr<Pipeline> p = find(req.matches[1]);
    if (!p) {
      res.status = 404;
      res.set_content(error_json("no pipeline '" + std::string(req.matches[1]) + "'"),
                      "application/json");
      return;
    }
    auto lag = consumer_lags();
    nlohmann::json out = nlohmann::json::array();
    PipelineState& s = p->state();
    std::lock_guard lock(s.positions_mutex);
    for (const auto& [tp, offset] : s.acknowledged_positions) {
      auto l = lag.find({p->config().name, tp.first, std::to_string(tp.second)});
      out.push_back({{"topic", tp.first}, {"partition", tp.second}, {"acknowledged", offset},
                     {"lag", l == lag.end() ? nlohmann::json(nullptr) : nlohmann::json(l->second)}});
    }
    res.set_content(json_text(out, 2), "application/json");
  });
}

// Live records at a stage as JSON lines (pipehost tap): ?stage=sink&limit=10&timeout_ms=30000.
void AdminServer::add_tap_route() {
  server_->Get(R"(/pipelines/([^/]+)/tap)", [this](const httplib::Request& req, httplib::Response& res) {
    std::shared_ptr<Pipeline> p = find(req.matches[1]);
    if (!p) {
      std::string known;
      for (auto& q : pipelines_()) known += (known.empty() ? "" : ", ") + q->config().name;
      res.status = 404;
      res.set_content(
          error_json("no pipeline '" + std::string(req.matches[1]) + "'; pipelines: " + known),
          "application/json");
      return;
    }
    std::string stage = req.has_param("stage") ? req.get_param_value("stage") : "sink";
    std::vector<std::string> labels;
    for (const StageStats& s : p->state().stages) labels.push_back(s.label);
    if (std::find(labels.begin(), labels.end(), stage) == labels.end()) {
      std::string known;
      for (const auto& l : labels) known += (known.empty() ? "" : ", ") + l;
      res.status = 400;
      res.set_content(error_json("pipeline '" + p->config().name + "' has no stage '" + stage +
                                 "'; its stages: " + known),
                      "application/json");
      return;
    }
    long limit = req.has_param("limit") ? std::atol(req.get_param_value("limit").c_str()) : 10;
    long timeout_ms = req.has_param("timeout_ms") ? std::atol(req.get_param_value("timeout_ms").c_str()) : 30000;
    if (limit < 1 || limit > 100000 || timeout_ms < 1 || timeout_ms > kLongestTapMs) {
      res.status = 400;
      res.set_content(error_json("limit must be 1 to 100000, timeout_ms 1 to 3600000"), "application/json");
      return;
    }
    // A tap holds one of the server's 8 worker threads for as long as it lasts: past 4,
    // /health and /ready would wait behind them (a liveness probe then kills the process).
    if (open_taps_.fetch_add(1) >= kMostTaps) {
      open_taps_ -= 1;
      res.status = 503;
      res.set_content(error_json(std::to_string(kMostTaps) + " taps are open already, the most this endpoint "
                                 "serves at once (so that /health keeps answering): end one first"),
                      "application/json");
      return;
    }
    PipelineState* state = &p->state();  // alive with `p`, which the provider holds
    auto tap = state->taps.open(stage, static_cast<std::size_t>(limit));
    const std::string name = p->config().name;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    res.set_chunked_content_provider(
        "application/x-ndjson",
        [this, p, state, tap, deadline, name](std::size_t, httplib::DataSink& sink) {
          if (!sink.is_writable()) return false;  // the client went away
          // Stopping, or the pipeline ended or a reload replaced it: nothing more passes.
          if (closing_ || p->done() || find(name) != p) {
            sink.done();
            return true;
          }
          std::vector<std::string> lines;
          bool more = state->taps.take(*tap, lines, std::chrono::milliseconds(200));
          for (auto& line : lines) {
            line += '\n';
            if (!sink.write(line.data(), line.size())) return false;
          }
          if (!more || std::chrono::steady_clock::now() > deadline) sink.done();
          return true;
        },
        [this, p, state, tap](bool) {
          state->taps.close(tap);
          open_taps_ -= 1;
        });
  });
}

// What changes state: the log level, and pausing, resuming or restarting a pipeline.
void AdminServer::add_control_routes() {
  server_->Put("/log-level", [](const httplib::Request& req, httplib::Response& res) {
    auto body = nlohmann::json::parse(req.body, nullptr, false);
    LogLevel level;
    if (!body.is_object() || !body.contains("level") || !body["level"].is_string() ||
        !parse_log_level(body["level"].get<std::string>(), level)) {
      res.status = 400;
      res.set_content(error_json("send {\"level\": \"debug\"|\"info\"|\"warn\"|\"error\"}"),
                      "application/json");
      return;
    }
    set_log_level(level);
    log_line(LogLevel::warn, "pipehost", std::string("admin: log level set to ") + log_level_name(level));
    res.set_content(json_text(nlohmann::json{{"level", log_level_name(level)}}), "application/json");
  });
  server_->Post(R"(/pipelines/([^/]+)/(pause|resume|restart))",
                [this](const httplib::Request& req, httplib::Response& res) {
                  std::shared_ptr<Pipeline> p = find(req.matches[1]);
                  if (!p) {
                    res.status = 404;
                    res.set_content(error_json("no pipeline '" + std::string(req.matches[1]) + "'"),
                                    "application/json");
                    return;
                  }
                  if (req.matches[2] == "restart") {
                    if (!p->restart()) {
                      res.status = 409;
                      res.set_content(
                          error_json("pipeline '" + p->config().name + "' is stopping or restarting already"),
                          "application/json");
                      return;
                    }
                    log_info("admin: pipeline '" + p->config().name + "' restarting");
                  } else {
                    p->state().paused = req.matches[2] == "pause";
                    log_info("admin: pipeline '" + p->config().name + "' " +
                             (p->state().paused ? "paused" : "resumed"));
                  }
                  res.set_content(pipelines_json(), "application/json");
                });
}

}  // namespace pipehost::host
