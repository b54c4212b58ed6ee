#include "services/registry_server.hpp"

#include <httplib.h>

#include <algorithm>
#include <charconv>
#include <csignal>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "http/exclusive_port.hpp"
#include "log.hpp"
#include "services/memory_registry.hpp"

namespace pipehost::host {
namespace {

using nlohmann::json;

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/vnd.schemaregistry.v1+json");
}

void not_found(httplib::Response& res, int code, const std::string& message) {
  reply(res, 404, {{"error_code", code}, {"message", message}});
}

// A number from the URL; nullopt past int's range (a Confluent registry answers 404 then).
std::optional<int> number(const std::string& digits) {
  int n = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return n;
}

// "schemaType" (left out for AVRO, as Confluent does) and "references" (when there are).
void describe(const RegisteredSchema& s, json& out) {
  if (s.schema_type != "AVRO") out["schemaType"] = s.schema_type;
  if (s.references.empty()) return;
  json refs = json::array();
  for (const auto& r : s.references) refs.push_back({{"name", r.name}, {"subject", r.subject}, {"version", r.version}});
  out["references"] = std::move(refs);
}

json version_json(const std::string& subject, int version, const RegisteredSchema& s) {
  json out = {{"subject", subject}, {"version", version}, {"id", s.id}, {"schema", s.schema}};
  describe(s, out);
  return out;
}

// A request's "references": [{"name", "subject", "version"}, ...]; false when malformed.
bool references_of(const json& body, std::vector<SchemaReference>& out) {
  auto refs = body.find("references");
  if (refs == body.end() || refs->is_null()) return true;
  if (!refs->is_array()) return false;
  for (const auto& r : *refs) {
    if (!r.is_object() || !r.contains("name") || !r["name"].is_string() || !r.contains("subject") ||
        !r["subject"].is_string() || !r.contains("version") || !r["version"].is_number_integer())
      return false;
    out.push_back({r["name"].get<std::string>(), r["subject"].get<std::string>(), r["version"].get<int>()});
  }
  return true;
}

void routes(httplib::Server& server, MemorySchemaRegistry& registry) {
  server.Post(R"(/subjects/(.+)/versions)", [&](const httplib::Request& req, httplib::Response& res) {
    json body = json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.contains("schema") || !body["schema"].is_string())
      return reply(res, 422, {{"error_code", 42201}, {"message", "body needs a \"schema\" string"}});
    std::string type = "AVRO";  // absent or null: Confluent's default
    if (body.contains("schemaType") && !body["schemaType"].is_null()) {
      if (!body["schemaType"].is_string())
        return reply(res, 422, {{"error_code", 42201}, {"message", "\"schemaType\" must be a string"}});
      type = body["schemaType"].get<std::string>();
      if (type != "AVRO" && type != "JSON" && type != "PROTOBUF")
        return reply(res, 422, {{"error_code", 42201},
                                {"message", "Invalid schema type " + type + ": AVRO, JSON or PROTOBUF"}});
    }
    // An Avro or JSON schema is JSON text (Confluent answers 422 otherwise; the whole Avro
    // grammar is left to the decoders, which say what is wrong with one).
    if (type == "AVRO" || type == "JSON") {
      const json parsed = json::parse(body["schema"].get<std::string>(), nullptr, false);
      if (parsed.is_discarded() || !(parsed.is_object() || parsed.is_array() || parsed.is_string() ||
                                     (type == "JSON" && parsed.is_boolean())))
        return reply(res, 422, {{"error_code", 42201},
                                {"message", "Invalid schema: an " + type + " schema is a JSON " +
                                                (type == "AVRO" ? "object, array or type name" : "object")}});
    }
    std::vector<SchemaReference> references;
    if (!references_of(body, references))
      return reply(res, 422, {{"error_code", 42201},
                              {"message", "\"references\" must be [{\"name\", \"subject\", \"version\"}, ...]"}});
    int id = 0, version = 0;
    Status s = registry.register_schema(req.matches[1].str(), type, body["schema"].get<std::string>(),
                                        references, id, version);
    if (s.code() == Code::invalid) return reply(res, 422, {{"error_code", 42201}, {"message", s.message()}});
    if (!s.is_ok()) return reply(res, 500, {{"error_code", 50001}, {"message", s.message()}});
    reply(res, 200, {{"id", id}});
  });
  server.Get(R"(/schemas/ids/(\d+))", [&](const httplib::Request& req, httplib::Response& res) {
    RegisteredSchema s;
    auto id = number(req.matches[1].str());
    if (!id || !registry.schema_by_id(*id, s).is_ok()) return not_found(res, 40403, "Schema not found");
    json out = {{"schema", s.schema}};
    describe(s, out);
    reply(res, 200, out);
  });
  server.Get("/subjects", [&](const httplib::Request&, httplib::Response& res) {
    reply(res, 200, registry.subjects());
  });
  server.Get(R"(/subjects/(.+)/versions)", [&](const httplib::Request& req, httplib::Response& res) {
    auto ids = registry.versions(req.matches[1].str());
    if (ids.empty()) return not_found(res, 40401, "Subject not found");
    json versions = json::array();
    for (std::size_t i = 1; i <= ids.size(); ++i) versions.push_back(i);
    reply(res, 200, versions);
  });
  server.Get(R"(/subjects/(.+)/versions/(latest|-1|\d+))", [&](const httplib::Request& req, httplib::Response& res) {
    std::string subject = req.matches[1].str();
    auto ids = registry.versions(subject);
    if (ids.empty()) return not_found(res, 40401, "Subject not found");
    const bool latest = req.matches[2] == "latest" || req.matches[2] == "-1";  // -1: Confluent's latest
    auto asked = latest ? std::optional<int>(static_cast<int>(ids.size())) : number(req.matches[2].str());
    if (!asked || *asked < 1 || static_cast<std::size_t>(*asked) > ids.size())
      return not_found(res, 40402, "Version not found");
    const auto v = static_cast<std::size_t>(*asked);
    RegisteredSchema s;
    registry.schema_by_id(ids[v - 1], s);
    reply(res, 200, version_json(subject, static_cast<int>(v), s));
  });
  server.Post(R"(/subjects/(.+))", [&](const httplib::Request& req, httplib::Response& res) {
    std::string subject = req.matches[1].str();
    json body = json::parse(req.body, nullptr, false);
    auto ids = registry.versions(subject);
    if (ids.empty()) return not_found(res, 40401, "Subject not found");
    std::vector<SchemaReference> references;
    if (!body.is_object() || !body.contains("schema") || !body["schema"].is_string() ||
        !references_of(body, references))
      return not_found(res, 40403, "Schema not found");
    const std::string type = body.contains("schemaType") && body["schemaType"].is_string()
                                 ? body["schemaType"].get<std::string>()
                                 : "AVRO";
    auto version = registry.version_of(subject, type, body["schema"].get<std::string>(), references);
    if (!version) return not_found(res, 40403, "Schema not found");
    RegisteredSchema s;
    registry.schema_by_id(ids[static_cast<std::size_t>(*version) - 1], s);
    reply(res, 200, version_json(subject, *version, s));
  });
  // Compatibility: this registry checks none (level NONE), so every schema is compatible;
  // a client asking for another level is told so rather than given a check it would trust.
  server.Get(R"(/config(/.+)?)", [](const httplib::Request&, httplib::Response& res) {
    reply(res, 200, {{"compatibilityLevel", "NONE"}});
  });
  server.Put(R"(/config(/.+)?)", [](const httplib::Request& req, httplib::Response& res) {
    json body = json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.contains("compatibility") || body["compatibility"] != "NONE")
      return reply(res, 422, {{"error_code", 42203},
                              {"message", "Invalid compatibility level: this registry (pipehost registry) checks "
                                          "no compatibility, so only NONE is taken"}});
    reply(res, 200, {{"compatibility", "NONE"}});
  });
  server.Post(R"(/compatibility/subjects/(.+)/versions/(latest|-1|\d+))",
              [&](const httplib::Request& req, httplib::Response& res) {
                auto ids = registry.versions(req.matches[1].str());
                const bool latest = req.matches[2] == "latest" || req.matches[2] == "-1";
                auto asked = latest ? std::optional<int>(static_cast<int>(ids.size())) : number(req.matches[2].str());
                if (!latest && ids.empty()) return not_found(res, 40401, "Subject not found");
                if (!latest && (!asked || *asked < 1 || static_cast<std::size_t>(*asked) > ids.size()))
                  return not_found(res, 40402, "Version not found");
                reply(res, 200, {{"is_compatible", true}});
              });
  server.Delete(R"(/subjects/(.+))", [](const httplib::Request&, httplib::Response& res) {
    reply(res, 405, {{"error_code", 405},
                     {"message", "pipehost registry keeps every schema for its life: it deletes none"}});
  });
  // Other paths and methods answer with a Confluent error body (an empty one read as
  // "Unknown Schema Registry Error" to clients).
  server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    reply(res, res.status, {{"error_code", res.status},
                            {"message", "HTTP " + std::to_string(res.status) +
                                            (res.status == 404 ? " Not Found" : res.status == 405 ? " Method Not Allowed" : "")}});
  });
  // Anything else that throws answers as a Confluent registry does, not an empty 500.
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    reply(res, 500, {{"error_code", 50001}, {"message", "internal error"}});
  });
}

}  // namespace

int serve_registry(const std::string& address) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto colon = address.rfind(':');
  std::string host = colon == std::string::npos ? "127.0.0.1" : address.substr(0, colon);
  int port = std::atoi(address.substr(colon == std::string::npos ? 0 : colon + 1).c_str());
  MemorySchemaRegistry registry;
  httplib::Server server;
  routes(server, registry);
  listen_exclusively(server);
  if (port <= 0 || !server.bind_to_port(host, port)) {
    log_error("cannot listen on " + address + " (give HOST:PORT that is free)");
    return 2;
  }
  std::thread serving = serve_after_bind(server);
  log_info("schema registry (Confluent REST API, in memory) on http://" + host + ":" +
           std::to_string(port));
  int sig = 0;
  sigwait(&signals, &sig);
  server.stop();
  serving.join();
  return 0;
}

}  // namespace pipehost::host
