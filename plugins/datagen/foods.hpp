// Fake food events in the shape of seed 003's datafeed: {"food": "<name>"}, no key,
// the name drawn uniformly from the feed's 107 names (a space written as '-').
#pragma once
#include <memory>

#include "generator.hpp"

namespace pipehost::datagen {

class FoodGenerator final : public Generator {
 public:
  explicit FoodGenerator(std::uint64_t seed);
  std::string make(std::uint64_t index, std::int64_t now_micros, Value& value) const override;
  static const std::vector<std::string>& names();

 private:
  std::uint64_t seed_;
  std::shared_ptr<const StructSchema> schema_;
};

}  // namespace pipehost::datagen
