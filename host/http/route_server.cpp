#include "http/route_server.hpp"

#include <httplib.h>

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

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

std::string error_json(const std::string& message) { return nlohmann::json{{"error", message}}.dump(); }

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
      const auto& methods = m->config->methods;
      if (std::find(methods.begin(), methods.end(), req.method) == methods.end()) {
        res.status = 405;
        res.set_header("Allow", [&] {
          std::string allow;
          for (const auto& x : methods) allow += (allow.empty() ? "" : ", ") + x;
          return allow;
        }());
        res.set_content(error_json("method " + req.method + " is not allowed here"), "application/json");
        return;
      }
      HttpRequest request{req.method, req.path, {}, req.body};
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
    for (const char* method : {"GET", "POST", "PUT", "DELETE", "PATCH"}) {
      std::string verb = method;
      if (verb == "GET") server_->Get(route.path, handler);
      else if (verb == "POST") server_->Post(route.path, handler);
      else if (verb == "PUT") server_->Put(route.path, handler);
      else if (verb == "DELETE") server_->Delete(route.path, handler);
      else server_->Patch(route.path, handler);
    }
    routes_.push_back(std::move(mounted));
  }
  auto colon = config_.listen.rfind(':');
  std::string host = config_.listen.substr(0, colon);
  int port = std::atoi(config_.listen.substr(colon + 1).c_str());
  server_->set_keep_alive_timeout(1);
  if (!server_->bind_to_port(host, port)) {
    error = "cannot listen on " + config_.listen + " for [http] (in use?)";
    return false;
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  std::string paths;
  for (const auto& r : config_.routes) paths += (paths.empty() ? "" : ", ") + r.path;
  log_info("http: serving " + paths + " on http://" + config_.listen);
  return true;
}

}  // namespace pipehost::host
