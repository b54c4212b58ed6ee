// Fake trades in the shape of seed 002's producer: {"id":"T47654","version":73,
// "counter_party":"CP-12","book":"B34","expired":true,"matures_at":"<RFC 3339, ns>",
// "created_at":"<RFC 3339, ns>"}. ids T0-T99999, versions 0-99, CP-0-CP-99, B0-B99;
// created in the two years before 2025, maturing up to ten years later. The timestamps
// are RFC 3339 strings with nanoseconds, as Go's time.Time marshals to JSON.
#pragma once
#include <memory>

#include "generator.hpp"

namespace pipehost::datagen {

class TradeGenerator final : public Generator {
 public:
  // key_by_id: the record's key is its id (the seed wrote no key).
  TradeGenerator(std::uint64_t seed, bool key_by_id);
  std::string make(std::uint64_t index, std::int64_t now_micros, Value& value) const override;

 private:
  std::uint64_t seed_;
  bool key_by_id_;
  std::shared_ptr<const StructSchema> schema_;
};

// "2024-05-01T12:34:56.123456789Z" for nanoseconds since the epoch.
std::string rfc3339_nanos(std::int64_t nanos_since_epoch);

}  // namespace pipehost::datagen
