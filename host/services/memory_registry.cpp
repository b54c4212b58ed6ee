#include "services/memory_registry.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace pipehost::host {

std::string canonical_schema(std::string_view schema_type, std::string_view schema) {
  if (schema_type != "AVRO" && schema_type != "JSON") return std::string(schema);
  nlohmann::json parsed = nlohmann::json::parse(schema, nullptr, false);
  return parsed.is_discarded() ? std::string(schema) : parsed.dump();
}

Status MemorySchemaRegistry::register_schema(std::string_view subject, std::string_view schema_type,
                                             std::string_view schema, int& id) noexcept {
  int version = 0;
  return register_schema(subject, schema_type, schema, {}, id, version);
}

Status MemorySchemaRegistry::register_schema(std::string_view subject, std::string_view schema_type,
                                             std::string_view schema,
                                             const std::vector<SchemaReference>& references,
                                             int& id, int& version) noexcept {
  try {
    std::lock_guard lock(mutex_);
    for (const auto& r : references) {
      auto known = subjects_.find(r.subject);
      if (known == subjects_.end() || r.version < 1 ||
          static_cast<std::size_t>(r.version) > known->second.size())
        return Status::invalid("reference '" + r.name + "' names subject '" + r.subject +
                               "' version " + std::to_string(r.version) +
                               ", which is not registered (register it first)");
    }
    // The same schema (canonical text, type and references) gets the same id everywhere,
    // as in Confluent's registry.
    std::string canonical = canonical_schema(schema_type, schema);
    id = 0;
    for (const auto& [known, s] : by_id_)
      if (canonical_.at(known) == canonical && s.schema_type == schema_type && s.references == references)
        id = known;
    if (id == 0) {
      id = static_cast<int>(by_id_.size()) + 1;
      by_id_[id] = RegisteredSchema{id, std::string(schema_type), std::string(schema), references};
      canonical_[id] = std::move(canonical);
    }
    auto& versions = subjects_[std::string(subject)];
    auto at = std::find(versions.begin(), versions.end(), id);
    if (at == versions.end()) at = versions.insert(versions.end(), id);
    version = static_cast<int>(at - versions.begin()) + 1;
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::fatal(e.what());
  }
}

Status MemorySchemaRegistry::schema_by_id(int id, RegisteredSchema& out) noexcept {
  try {
    std::lock_guard lock(mutex_);
    auto it = by_id_.find(id);
    if (it == by_id_.end())
      return Status::invalid("schema id " + std::to_string(id) + " is not in the registry");
    out = it->second;
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::fatal(e.what());
  }
}

Status MemorySchemaRegistry::latest_schema(std::string_view subject, RegisteredSchema& out) noexcept {
  try {
    std::lock_guard lock(mutex_);
    auto it = subjects_.find(subject);
    if (it == subjects_.end() || it->second.empty())
      return Status::invalid("subject " + std::string(subject) + " has no schema in the registry");
    out = by_id_.at(it->second.back());
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::fatal(e.what());
  }
}

Status MemorySchemaRegistry::schema_version(std::string_view subject, int version,
                                            RegisteredSchema& out) noexcept {
  try {
    std::lock_guard lock(mutex_);
    auto it = subjects_.find(subject);
    if (it == subjects_.end() || version < 1 || static_cast<std::size_t>(version) > it->second.size())
      return Status::invalid("subject " + std::string(subject) + " has no version " +
                             std::to_string(version) + " in the registry");
    out = by_id_.at(it->second[static_cast<std::size_t>(version) - 1]);
    return Status::ok();
  } catch (const std::exception& e) {
    return Status::fatal(e.what());
  }
}

std::optional<int> MemorySchemaRegistry::version_of(
    std::string_view subject, std::string_view schema_type, std::string_view schema,
    const std::vector<SchemaReference>& references) const {
  const std::string canonical = canonical_schema(schema_type, schema);
  std::lock_guard lock(mutex_);
  auto it = subjects_.find(subject);
  if (it == subjects_.end()) return std::nullopt;
  for (std::size_t v = 0; v < it->second.size(); ++v) {
    const int id = it->second[v];
    const RegisteredSchema& s = by_id_.at(id);
    if (canonical_.at(id) == canonical && s.schema_type == schema_type && s.references == references)
      return static_cast<int>(v) + 1;
  }
  return std::nullopt;
}

std::vector<int> MemorySchemaRegistry::versions(const std::string& subject) const {
  std::lock_guard lock(mutex_);
  auto it = subjects_.find(subject);
  return it == subjects_.end() ? std::vector<int>{} : it->second;
}

std::vector<std::string> MemorySchemaRegistry::subjects() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [s, v] : subjects_) out.push_back(s);
  return out;
}

}  // namespace pipehost::host
