#include "services/rest_registry.hpp"

#include "services/memory_registry.hpp"

#include <curl/curl.h>

#include "pipehost/redact.hpp"

#include <nlohmann/json.hpp>

namespace pipehost::host {
namespace {
std::size_t append_body(char* data, std::size_t size, std::size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

std::string error_text(long status, const std::string& body) {
  try {
    auto j = nlohmann::json::parse(body);
    if (j.contains("message")) return "HTTP " + std::to_string(status) + ": " + j["message"].get<std::string>();
  } catch (...) {
  }
  return "HTTP " + std::to_string(status) + ": " + body.substr(0, 200);
}
// Confluent's error code in a 404's body: 40401 no such subject, 40402 no such version,
// 40403 no such schema. A 404 without one came from something else at that URL (a wrong
// path, another service), and saying "not in the registry" would dead-letter every record.
int error_code(const std::string& body) {
  try {
    auto j = nlohmann::json::parse(body);
    if (j.contains("error_code") && j["error_code"].is_number_integer()) return j["error_code"].get<int>();
  } catch (...) {
  }
  return 0;
}
// A schema as GET /schemas/ids/{id} and /subjects/{subject}/versions/{version} answer it.
RegisteredSchema schema_from(const nlohmann::json& j, int id) {
  RegisteredSchema s;
  s.id = id;
  s.schema = j.at("schema").get<std::string>();
  auto type = j.find("schemaType");  // absent (or null): AVRO, Confluent's default
  s.schema_type = type == j.end() || type->is_null() ? "AVRO" : type->get<std::string>();
  if (auto refs = j.find("references"); refs != j.end() && !refs->is_null())
    for (const auto& r : *refs)
      s.references.push_back({r.at("name").get<std::string>(), r.at("subject").get<std::string>(),
                              r.at("version").get<int>()});
  return s;
}
}  // namespace

Status RestSchemaRegistry::not_a_registry(const std::string& path, const std::string& body) const {
  return Status::fatal("schema registry " + shown_url_ + path + " answered " + error_text(404, body) +
                       ", without a Confluent error code: is schema_registry (SCHEMA_REGISTRY_URL) "
                       "the registry's API root? (Apicurio's: http://HOST:PORT/apis/ccompat/v7)");
}

// An answer other than 200 (and the 404s each call reads itself): unreachable, busy or
// failing for a while (retried), or a problem only the user can fix (the pipeline stops,
// naming the URL and the fix).
Status RestSchemaRegistry::failure(long status, const std::string& path, const std::string& text) const {
  const std::string where = "schema registry " + shown_url_ + path;
  if (status == -1)
    return Status::fatal(where + ": " + text + ": fix schema_registry (SCHEMA_REGISTRY_URL): its scheme "
                         "(http:// or https://), its form, or the TLS settings it needs");
  if (status == 0) return Status::retriable(where + " unreachable: " + text);
  if (status == 408 || status == 429 || status >= 500)
    return Status::retriable(where + " answered " + error_text(status, text));
  if (status == 401 || status == 403)
    return Status::fatal(where + " answered " + error_text(status, text) +
                         ": the registry wants credentials; give them in schema_registry "
                         "(SCHEMA_REGISTRY_URL), e.g. https://USER:PASSWORD@HOST:PORT");
  return Status::fatal(where + " answered " + error_text(status, text));
}

Status RestSchemaRegistry::not_understood(const std::string& path, const std::exception& e) const {
  return Status::fatal("schema registry " + shown_url_ + path + ": answer not understood (" + e.what() +
                       "): is schema_registry (SCHEMA_REGISTRY_URL) a Confluent-compatible registry?");
}

std::string RestSchemaRegistry::escape(std::string_view subject) {
  std::lock_guard lock(request_mutex_);  // the handle's
  char* escaped = curl_easy_escape(static_cast<CURL*>(curl_), subject.data(), static_cast<int>(subject.size()));
  std::string out = escaped ? escaped : "";
  curl_free(escaped);
  return out;
}

RestSchemaRegistry::RestSchemaRegistry(std::string base_url) : base_url_(std::move(base_url)) {
  while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
  shown_url_ = redact::url(base_url_);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  curl_ = curl_easy_init();
}

RestSchemaRegistry::~RestSchemaRegistry() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

std::pair<long, std::string> RestSchemaRegistry::request(const std::string& method,
                                                         const std::string& path,
                                                         const std::string& body) {
  std::lock_guard lock(request_mutex_);  // one request at a time on the one handle
  CURL* curl = static_cast<CURL*>(curl_);
  curl_easy_reset(curl);
  std::string url = base_url_ + path;
  std::string response;
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/vnd.schemaregistry.v1+json");
  headers = curl_slist_append(headers, "Accept: application/vnd.schemaregistry.v1+json, application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  if (method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  else response = curl_easy_strerror(rc);
  // The URL itself or its TLS is wrong: no retry would reach the registry (status -1).
  switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_LOGIN_DENIED:
      status = -1;
      break;
    default:
      break;
  }
  curl_slist_free_all(headers);
  return {status, response};
}

Status RestSchemaRegistry::register_schema(std::string_view subject, std::string_view schema_type,
                                           std::string_view schema, int& id) noexcept {
  return register_with(subject, schema_type, schema, {}, id, nullptr);
}

Status RestSchemaRegistry::register_schema(std::string_view subject, std::string_view schema_type,
                                           std::string_view schema,
                                           const std::vector<SchemaReference>& references, int& id,
                                           int& version) noexcept {
  return register_with(subject, schema_type, schema, references, id, &version);
}

// Registers (POST /subjects/{subject}/versions), then, when the version is wanted, asks
// for it (POST /subjects/{subject}: Confluent's registration answers only the id).
Status RestSchemaRegistry::register_with(std::string_view subject, std::string_view schema_type,
                                         std::string_view schema,
                                         const std::vector<SchemaReference>& references, int& id,
                                         int* version) noexcept {
  std::string path = "/subjects";
  try {
    nlohmann::json body = {{"schema", schema}};
    if (schema_type != "AVRO") body["schemaType"] = schema_type;
    if (!references.empty()) {
      body["references"] = nlohmann::json::array();
      for (const auto& r : references)
        body["references"].push_back({{"name", r.name}, {"subject", r.subject}, {"version", r.version}});
    }
    const std::string request_body = body.dump();
    const std::string cache_key = std::string(subject) + '\0' + request_body;
    {
      std::lock_guard lock(cache_mutex_);
      if (auto it = by_subject_and_schema_.find(cache_key);
          it != by_subject_and_schema_.end() && (!version || it->second.second > 0)) {
        id = it->second.first;
        if (version) *version = it->second.second;
        return Status::ok();
      }
    }
    path = "/subjects/" + escape(subject) + "/versions";
    auto [status, text] = request("POST", path, request_body);
    if (status == 404 && error_code(text) / 100 != 404) return not_a_registry(path, text);
    if (status != 200) {
      Status s = failure(status, path, text);
      if (s.code() == Code::retriable) return s;
      return Status::fatal("schema registry refused subject '" + std::string(subject) + "': " + s.message());
    }
    id = nlohmann::json::parse(text).at("id").get<int>();
    int found = 0;
    if (version) {
      path = "/subjects/" + escape(subject);
      auto [lookup_status, lookup] = request("POST", path, request_body);
      if (lookup_status == 404 && error_code(lookup) / 100 != 404) return not_a_registry(path, lookup);
      // Just registered, so not found means not found *yet* (a replica behind the leader).
      if (lookup_status == 404)
        return Status::retriable("registered as id " + std::to_string(id) + " under subject '" +
                                 std::string(subject) + "', but " +
                                 failure(lookup_status, path, lookup).message() + " (not yet)");
      if (lookup_status != 200) return failure(lookup_status, path, lookup);
      found = *version = nlohmann::json::parse(lookup).at("version").get<int>();
    }
    std::lock_guard lock(cache_mutex_);
    by_subject_and_schema_[cache_key] = {id, found};
    return Status::ok();
  } catch (const std::exception& e) {
    return not_understood(path, e);
  }
}

Status RestSchemaRegistry::schema_by_id(int id, RegisteredSchema& out) noexcept {
  const std::string path = "/schemas/ids/" + std::to_string(id);
  try {
    {
      std::lock_guard lock(cache_mutex_);
      if (auto it = by_id_.find(id); it != by_id_.end()) {
        out = it->second;
        return Status::ok();
      }
    }
    auto [status, text] = request("GET", path, "");
    if (status == 404 && error_code(text) != 40403) return not_a_registry(path, text);
    if (status == 404)
      return Status::invalid("schema id " + std::to_string(id) + " is not in the registry at " + shown_url_ +
                             ": the record was written against another registry (schema_registry must be the "
                             "producer's), or its schema was deleted");
    if (status != 200) return failure(status, path, text);
    RegisteredSchema s = schema_from(nlohmann::json::parse(text), id);
    std::lock_guard lock(cache_mutex_);
    by_id_[id] = s;
    out = s;
    return Status::ok();
  } catch (const std::exception& e) {
    return not_understood(path, e);
  }
}

Status RestSchemaRegistry::latest_schema(std::string_view subject, RegisteredSchema& out) noexcept {
  std::string path = "/subjects";
  try {
    path = "/subjects/" + escape(subject) + "/versions/latest";
    auto [status, text] = request("GET", path, "");
    if (status == 404 && error_code(text) != 40401 && error_code(text) != 40402) return not_a_registry(path, text);
    if (status == 404) return Status::invalid("subject " + std::string(subject) + " has no schema in the registry");
    if (status != 200) return failure(status, path, text);
    auto j = nlohmann::json::parse(text);
    out = schema_from(j, j.at("id").get<int>());
    std::lock_guard lock(cache_mutex_);
    by_id_[out.id] = out;
    return Status::ok();
  } catch (const std::exception& e) {
    return not_understood(path, e);
  }
}

Status RestSchemaRegistry::answers() noexcept {
  const std::string path = "/subjects";
  try {
    auto [status, text] = request("GET", path, "");
    if (status == 200) return Status::ok();
    if (status == 404) return not_a_registry(path, text);
    return failure(status, path, text);
  } catch (const std::exception& e) {
    return not_understood(path, e);
  }
}

// A version's schema never changes (a registry deletes versions, it does not rewrite
// them): cached as schemas by id are.
Status RestSchemaRegistry::schema_version(std::string_view subject, int version,
                                          RegisteredSchema& out) noexcept {
  std::string path = "/subjects";
  try {
    std::string cache_key = std::string(subject) + '\0' + std::to_string(version);
    {
      std::lock_guard lock(cache_mutex_);
      if (auto it = by_subject_and_version_.find(cache_key); it != by_subject_and_version_.end()) {
        out = it->second;
        return Status::ok();
      }
    }
    path = "/subjects/" + escape(subject) + "/versions/" + std::to_string(version);
    auto [status, text] = request("GET", path, "");
    if (status == 404 && error_code(text) != 40401 && error_code(text) != 40402) return not_a_registry(path, text);
    if (status == 404)
      return Status::invalid("subject " + std::string(subject) + " has no version " +
                             std::to_string(version) + " in the registry");
    if (status != 200) return failure(status, path, text);
    auto j = nlohmann::json::parse(text);
    out = schema_from(j, j.at("id").get<int>());
    std::lock_guard lock(cache_mutex_);
    by_subject_and_version_[cache_key] = out;
    return Status::ok();
  } catch (const std::exception& e) {
    return not_understood(path, e);
  }
}

std::unique_ptr<SchemaRegistry> make_schema_registry(const std::string& setting, bool kafka_embedded,
                                                     const std::string& kafka_bootstrap) {
  if (setting != "embedded") return std::make_unique<RestSchemaRegistry>(setting);
  if (kafka_embedded) return std::make_unique<MemorySchemaRegistry>();
  return std::make_unique<RefusedSchemaRegistry>(
      "schema_registry is \"embedded\" (an in-memory registry) but Kafka is " + kafka_bootstrap +
      ": the schema ids it gives would be lost when pipehost ends while the records framed with "
      "them stay on the broker; set schema_registry (e.g. SCHEMA_REGISTRY_URL=http://127.0.0.1:8081) "
      "to the registry of that cluster");
}

}  // namespace pipehost::host
