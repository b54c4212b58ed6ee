// Fake tenant events in the shape of seed 004's producer: {origin_service_id,
// origin_service_type, destination_service_type, event_timestamp (epoch ms, now),
// payload "dummy-payload <uuid>"}. Event i goes to destination i mod n, the destinations
// upper-cased as the seed's producer does; the key is "<origin_service_id>:<DESTINATION>".
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "generator.hpp"

namespace pipehost::datagen {

class TenantEventGenerator final : public Generator {
 public:
  TenantEventGenerator(std::uint64_t seed, std::string service_id, std::string service_type,
                       const std::vector<std::string>& destinations);
  std::string make(std::uint64_t index, std::int64_t now_micros, Value& value) const override;

 private:
  std::uint64_t seed_;
  std::string service_id_;
  std::string service_type_;
  std::vector<std::string> destinations_;  // upper-cased
  std::vector<std::string> keys_;          // "<service id>:<DESTINATION>"
  std::shared_ptr<const StructSchema> schema_;
};

}  // namespace pipehost::datagen
