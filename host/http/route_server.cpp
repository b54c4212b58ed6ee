#include "http/route_server.hpp"

#include <httplib.h>

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include "http/empty_body.hpp"
#include "http/exclusive_port.hpp"
#include "log.hpp"

namespace pipehost::host {
namespace {

// What a route component sees of the host: its label for logs, counters, services.
class RouteContext final : public Context {
 public:
  RouteContext(Services& services, std::string label) : services_(services), label_(std::move(label)) {}
  std::string_view pipeline() const noexcept override { return "http"; }
  std::string_view stage() const noexcept override { return label_; }
  int task_index() const noexcept override { return 0; }
  int task_count() const noexcept override { return 1; }
  void log(LogLevel level, std::string_view message) noexcept override {
    try {
      log_line(level, label_, message);
    } catch (...) {
    }
  }
  Counter& counter(std::string_view name) noexcept override {
    return services_.metrics.counter({"http", label_, std::string(name), {}});
  }
  SchemaRegistry& schema_registry() noexcept override { return *services_.registry; }
  std::string kafka_bootstrap() const noexcept override { return services_.kafka_bootstrap; }
  StringMap kafka_properties() const noexcept override { return services_.kafka_properties; }
  std::optional<std::int64_t> resume_position(std::string_view, std::int32_t) noexcept override {
    return std::nullopt;
  }
  std::vector<Position> take_acknowledged() noexcept override { return {}; }
  void set_expected_total(std::uint64_t) noexcept override {}
  bool stopping() const noexcept override { return services_.stopping; }
  std::string data_dir() const noexcept override { return services_.data_dir; }
  Gauge& gauge(std::string_view name, const MetricLabels& labels) noexcept override {
    return services_.metrics.gauge({"http", label_, std::string(name), labels});
  }
  void set_ready(bool) noexcept override {}

 private:
  Services& services_;
  std::string label_;
};

// A request body past this gets 413 instead of being read into memory.
constexpr std::size_t kMostBodyBytes = 1 << 20;

std::string error_json(const std::string& message) {
  return nlohmann::json{{"error", message}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The path as a regular expression matching only itself (httplib routes by regex).
std::string literal_pattern(const std::string& path) {
  std::string out;
  for (char c : path) {
    if (std::string_view(R"(\^$.|?*+()[]{})").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

struct RouteServer::Mounted {
  const RouteConfig* config;
  std::unique_ptr<RouteContext> context;
  std::unique_ptr<RouteStage> stage;
};

RouteServer::RouteServer(const HttpConfig& config, Services& services)
    : config_(config), services_(services), server_(std::make_unique<httplib::Server>()) {}

RouteServer::~RouteServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
  for (auto& r : routes_)
    if (r->stage) r->stage->stop();
  routes_.clear();  // stages before their contexts (members of Mounted, in order)
}

bool RouteServer::start(std::string& error) {
  for (const auto& route : config_.routes) {
    auto mounted = std::make_unique<Mounted>();
    mounted->config = &route;
    mounted->context = std::make_unique<RouteContext>(services_, route.path);
    std::string why;
    mounted->stage = route.stage.component->make_route(route.stage.options, *mounted->context, why);
    if (!mounted->stage) {
      error = "route " + route.path + " (" + route.stage.plugin + "): " + why;
      return false;
    }
    if (Status s = mounted->stage->start(); !s.is_ok()) {
      error = "route " + route.path + " (" + route.stage.plugin + "): " + s.message();
      return false;
    }
    Mounted* m = mounted.get();
    auto handler = [m](const httplib::Request& req, httplib::Response& res) {
      HttpRequest request{req.method == "HEAD" ? "GET" : req.method, req.path, {}, req.body};
      for (const auto& [k, v] : req.params) request.query[k] = v;
      HttpResponse response;
      Status s = m->stage->handle(request, response);
      if (!s.is_ok()) {
        res.status = s.code() == Code::invalid ? 400 : s.code() == Code::retriable ? 503 : 500;
        res.set_content(error_json(s.message()), "application/json");
        return;
      }
      res.status = response.status;
      res.set_content(response.body, response.content_type);
    };
    // Only the methods the route answers reach a handler (see the pre-routing handler);
    // the path is matched literally, not as the regular expression httplib takes.
    const std::string pattern = literal_pattern(route.path);
    static_assert(RouteConfig::kMethods.size() == 5, "a method added there is registered here");
    for (const auto& method : route.methods) {
      if (method == "GET") server_->Get(pattern, handler);  // HEAD too
      else if (method == "POST") server_->Post(pattern, handler);
      else if (method == "PUT") server_->Put(pattern, handler);
      else if (method == "DELETE") server_->Delete(pattern, handler);
      else if (method == "PATCH") server_->Patch(pattern, handler);
    }
    by_path_[route.path] = m;
    routes_.push_back(std::move(mounted));
  }
  // Decided before a request's body is read: a method the route does not answer gets 405
  // (its body unread), OPTIONS the methods it does, as Flask answers the seed's API.
  server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    no_length_means_no_body(req);
    if (refuse_chunked_body(req, res)) return httplib::Server::HandlerResponse::Handled;
    if (req.ranges.size() > 1) {  // httplib would send one copy of the body per range
      res.status = 416;
      return httplib::Server::HandlerResponse::Handled;
    }
    auto found = by_path_.find(req.path);
    if (found == by_path_.end()) return httplib::Server::HandlerResponse::Unhandled;  // 404
    const auto& methods = found->second->config->methods;
    auto answers = [&](const std::string& method) {
      return std::find(methods.begin(), methods.end(), method) != methods.end();
    };
    if (answers(req.method) || (req.method == "HEAD" && answers("GET")))
      return httplib::Server::HandlerResponse::Unhandled;
    std::string allow;
    for (const auto& x : methods) allow += (allow.empty() ? "" : ", ") + x;
    if (answers("GET")) allow += ", HEAD";
    allow += ", OPTIONS";
    res.set_header("Allow", allow);
    if (req.method == "OPTIONS") {
      res.status = 200;
    } else {
      res.status = 405;
      res.set_content(error_json("method " + req.method + " is not allowed here; allowed: " + allow),
                      "application/json");
    }
    return httplib::Server::HandlerResponse::Handled;
  });
  server_->set_payload_max_length(kMostBodyBytes);  // 413 past it
  auto colon = config_.listen.rfind(':');
  std::string host = config_.listen.substr(0, colon);
  int port = std::atoi(config_.listen.substr(colon + 1).c_str());
  server_->set_keep_alive_timeout(1);
  listen_exclusively(*server_);
  if (!server_->bind_to_port(host, port)) {
    error = "cannot listen on " + config_.listen + " for [http] (in use?)";
    return false;
  }
  thread_ = serve_after_bind(*server_);
  std::string paths;
  for (const auto& r : config_.routes) paths += (paths.empty() ? "" : ", ") + r.path;
  log_info("http: serving " + paths + " on http://" + config_.listen);
  return true;
}

}  // namespace pipehost::host
