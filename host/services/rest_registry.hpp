// A client of a real Schema Registry over Confluent's REST API (libcurl), with a cache
// of schemas by id and ids by (subject, schema).
#pragma once
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "pipehost/context.hpp"

namespace pipehost::host {

class RestSchemaRegistry final : public SchemaRegistry {
 public:
  explicit RestSchemaRegistry(std::string base_url);
  ~RestSchemaRegistry() override;
  Status register_schema(std::string_view subject, std::string_view schema_type,
                         std::string_view schema, int& id) noexcept override;
  Status register_schema(std::string_view subject, std::string_view schema_type,
                         std::string_view schema, const std::vector<SchemaReference>& references,
                         int& id, int& version) noexcept override;
  Status schema_by_id(int id, RegisteredSchema& out) noexcept override;
  Status latest_schema(std::string_view subject, RegisteredSchema& out) noexcept override;
  Status schema_version(std::string_view subject, int version,
                        RegisteredSchema& out) noexcept override;
  // Whether the registry answers (GET /subjects): `pipehost validate --connect`.
  Status answers() noexcept;

 private:
  Status register_with(std::string_view subject, std::string_view schema_type, std::string_view schema,
                       const std::vector<SchemaReference>& references, int& id, int* version) noexcept;
  Status not_a_registry(const std::string& path, const std::string& body) const;
  Status failure(long status, const std::string& path, const std::string& text) const;
  Status not_understood(const std::string& path, const std::exception& e) const;
  std::string escape(std::string_view subject);  // for a URL path
  // HTTP status and body; status 0 means the request did not reach the server.
  std::pair<long, std::string> request(const std::string& method, const std::string& path,
                                       const std::string& body);
  std::string base_url_;
  std::string shown_url_;  // for messages: without a password
  // The caches are read without waiting for a request in flight (which may take its
  // 10 s timeout); requests take turns on the one curl handle.
  std::mutex cache_mutex_;
  std::mutex request_mutex_;
  void* curl_ = nullptr;
  std::map<int, RegisteredSchema> by_id_;
  std::map<std::string, std::pair<int, int>> by_subject_and_schema_;  // id, version (0: not asked)
  std::map<std::string, RegisteredSchema> by_subject_and_version_;
};

// The registry a config's `schema_registry` names: a URL, or "embedded" (in memory, and
// refused on use unless Kafka is embedded too: see RefusedSchemaRegistry).
std::unique_ptr<SchemaRegistry> make_schema_registry(const std::string& setting, bool kafka_embedded,
                                                     const std::string& kafka_bootstrap);

}  // namespace pipehost::host
