// One kind of fake record. Record k is a pure function of (seed, k), so the same seed
// gives the same records whatever the number of tasks and runs.
#pragma once
#include <cstdint>
#include <string>

#include <pipehost/value.hpp>

namespace pipehost::datagen {

class Generator {
 public:
  virtual ~Generator() = default;
  // Fills `value` with record number `index` and returns its key ("" for none).
  virtual const std::string& make(std::uint64_t index, std::int64_t now_micros, Value& value) const = 0;
};

}  // namespace pipehost::datagen
