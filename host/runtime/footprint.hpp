// Memory a record holds beyond its raw bytes: decoded values and headers. Counted
// against a pipeline's max_in_flight_bytes, so a decoder that turns 100 bytes into a
// struct of many strings cannot hold far more memory than the limit says.
#pragma once
#include <cstdint>

#include "pipehost/record.hpp"

namespace pipehost::host {

inline std::uint64_t footprint(const Value& v) {
  std::uint64_t n = sizeof(Value);
  if (const auto* s = v.as<std::string>()) n += s->capacity() > 15 ? s->capacity() : 0;
  else if (const auto* b = v.as<Bytes>()) n += b->data.capacity() > 15 ? b->data.capacity() : 0;
  else if (const auto* l = v.as<List>())
    for (const auto& e : *l) n += footprint(e);
  else if (const auto* st = v.as<Struct>())
    for (const auto& f : st->fields) n += footprint(f);
  return n;
}

// Beyond key and payload, which the tracker counts when the batch is read.
inline std::uint64_t extra_footprint(const Record& r) {
  std::uint64_t n = sizeof(Record) + footprint(r.value) - sizeof(Value);
  for (const auto& h : r.headers) n += sizeof(Header) + h.key.size() + h.value.size();
  return n;
}

}  // namespace pipehost::host
