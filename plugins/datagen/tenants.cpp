#include "tenants.hpp"

#include <cctype>

namespace pipehost::datagen {

TenantEventGenerator::TenantEventGenerator(std::uint64_t seed, std::string service_id,
                                           std::string service_type,
                                           const std::vector<std::string>& destinations)
    : seed_(seed),
      service_id_(std::move(service_id)),
      service_type_(std::move(service_type)),
      schema_(StructSchema::make({"origin_service_id", "origin_service_type",
                                  "destination_service_type", "event_timestamp", "payload"})) {
  for (std::string d : destinations) {
    for (char& c : d) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    keys_.push_back(service_id_ + ":" + d);
    destinations_.push_back(std::move(d));
  }
}

std::string TenantEventGenerator::make(std::uint64_t index, std::int64_t now_micros,
                                       Value& value) const {
  Draws d{mix(seed_ ^ mix(index))};
  const std::size_t to = index % destinations_.size();
  value = Struct{schema_,
                 {Value(service_id_), Value(service_type_), Value(destinations_[to]),
                  Value(std::int64_t{now_micros / 1000}), Value("dummy-payload " + uuid_v4(d))}};
  return keys_[to];
}

}  // namespace pipehost::datagen
