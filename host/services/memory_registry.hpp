// The embedded Schema Registry: Confluent's subject/version/id model in memory.
#pragma once
#include <map>
#include <unordered_map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "pipehost/context.hpp"

namespace pipehost::host {

class MemorySchemaRegistry final : public SchemaRegistry {
 public:
  Status register_schema(std::string_view subject, std::string_view schema_type,
                         std::string_view schema, int& id) noexcept override;
  // With the schemas it uses (POST /subjects/{subject}/versions with "references"): each
  // must be registered already (invalid otherwise, naming it). The same text with other
  // references is another schema, as in Confluent's registry.
  Status register_schema(std::string_view subject, std::string_view schema_type,
                         std::string_view schema, const std::vector<SchemaReference>& references,
                         int& id, int& version) noexcept override;
  Status schema_by_id(int id, RegisteredSchema& out) noexcept override;
  Status latest_schema(std::string_view subject, RegisteredSchema& out) noexcept override;
  Status schema_version(std::string_view subject, int version,
                        RegisteredSchema& out) noexcept override;
  // The version under which subject holds this schema (POST /subjects/{subject}).
  std::optional<int> version_of(std::string_view subject, std::string_view schema_type,
                                std::string_view schema,
                                const std::vector<SchemaReference>& references) const;
  // The ids registered under a subject, oldest version first.
  std::vector<int> versions(const std::string& subject) const;
  std::vector<std::string> subjects() const;

 private:
  mutable std::mutex mutex_;
  std::map<int, RegisteredSchema> by_id_;
  std::unordered_map<std::string, int> by_identity_;  // identity() -> id
  static std::string identity(std::string_view schema_type, std::string_view schema,
                              const std::vector<SchemaReference>& references);
  std::map<std::string, std::vector<int>, std::less<>> subjects_;
};

// What makes two registrations the same schema: for AVRO and JSON the parsed JSON, so
// whitespace and the order of an object's keys do not count (as in Confluent's registry,
// which compares a parsed form); a PROTOBUF schema's text as it is.
std::string canonical_schema(std::string_view schema_type, std::string_view schema);

// The embedded registry when Kafka is a real cluster: every call fails, saying why. Its
// ids would die with the process while the records framed with them stay on the broker,
// where no other reader (nor this config's next run, whose ids start at 1 again) could
// resolve them, or would resolve them to another schema.
class RefusedSchemaRegistry final : public SchemaRegistry {
 public:
  explicit RefusedSchemaRegistry(std::string why) : why_(std::move(why)) {}
  const std::string& why() const { return why_; }
  Status register_schema(std::string_view, std::string_view, std::string_view, int&) noexcept override {
    return Status::fatal(why_);
  }
  Status register_schema(std::string_view, std::string_view, std::string_view,
                         const std::vector<SchemaReference>&, int&, int&) noexcept override {
    return Status::fatal(why_);
  }
  Status schema_by_id(int, RegisteredSchema&) noexcept override { return Status::fatal(why_); }
  Status latest_schema(std::string_view, RegisteredSchema&) noexcept override {
    return Status::fatal(why_);
  }
  Status schema_version(std::string_view, int, RegisteredSchema&) noexcept override {
    return Status::fatal(why_);
  }

 private:
  std::string why_;
};

}  // namespace pipehost::host
