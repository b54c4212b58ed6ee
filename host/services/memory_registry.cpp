#include "services/memory_registry.hpp"

#include <algorithm>

namespace pipehost::host {

Status MemorySchemaRegistry::register_schema(std::string_view subject, std::string_view schema_type,
                                             std::string_view schema, int& id) noexcept {
  try {
    std::lock_guard lock(mutex_);
    // The same schema text gets the same id everywhere, as in Confluent's registry.
    id = 0;
    for (const auto& [known, s] : by_id_)
      if (s.schema == schema && s.schema_type == schema_type) id = known;
    if (id == 0) {
      id = static_cast<int>(by_id_.size()) + 1;
      by_id_[id] = RegisteredSchema{id, std::string(schema_type), std::string(schema)};
    }
    auto& versions = subjects_[std::string(subject)];
    if (std::find(versions.begin(), versions.end(), id) == versions.end()) versions.push_back(id);
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
