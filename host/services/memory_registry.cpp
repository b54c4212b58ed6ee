#include "services/memory_registry.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace pipehost::host {

std::string canonical_schema(std::string_view schema_type, std::string_view schema) {
  if (schema_type != "AVRO" && schema_type != "JSON") return std::string(schema);
  nlohmann::json parsed = nlohmann::json::parse(schema, nullptr, false);
  return parsed.is_discarded() ? std::string(schema) : parsed.dump();
}

// What makes two registrations the same schema (one id), as in Confluent's registry: the
// canonical text, the type and the references. A key, so that registering is not a
// comparison with every schema registered before.
std::string MemorySchemaRegistry::identity(std::string_view schema_type, std::string_view schema,
                                           const std::vector<SchemaReference>& references) {
  std::string key;
  auto add = [&](std::string_view part) {  // length-prefixed: no text can fake a boundary
    key += std::to_string(part.size());
    key += ':';
    key += part;
  };
  add(schema_type);
  add(canonical_schema(schema_type, schema));
  for (const auto& r : references) {
    add(r.name);
    add(r.subject);
    add(std::to_string(r.version));
  }
  return key;
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
    auto [known, added] =
        by_identity_.try_emplace(identity(schema_type, schema, references), static_cast<int>(by_id_.size()) + 1);
    id = known->second;
    if (added) by_id_[id] = RegisteredSchema{id, std::string(schema_type), std::string(schema), references};
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
      return Status::invalid("schema id " + std::to_string(id) +
                             " is not in the embedded registry: the record was written against another "
                             "registry (set schema_registry to the producer's)");
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
  const std::string key = identity(schema_type, schema, references);
  std::lock_guard lock(mutex_);
  auto it = subjects_.find(subject);
  auto known = by_identity_.find(key);
  if (it == subjects_.end() || known == by_identity_.end()) return std::nullopt;
  auto at = std::find(it->second.begin(), it->second.end(), known->second);
  if (at == it->second.end()) return std::nullopt;
  return static_cast<int>(at - it->second.begin()) + 1;
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
