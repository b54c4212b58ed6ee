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
  // Fills `value` with record number `index` and returns its key ("" for none). `value`
  // may hold an earlier record's storage (Record::value_to_overwrite): overwrite it whole.
  virtual std::string make(std::uint64_t index, std::int64_t now_micros, Value& value) const = 0;
};

// splitmix64: a fast, well-mixed hash of (seed, index), each record's randomness.
inline std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A record's stream of draws: Draws{mix(seed ^ mix(index))}.
struct Draws {
  std::uint64_t state;
  std::uint64_t next() { return state = mix(state); }
  std::uint64_t below(std::uint64_t n) { return next() % n; }
};

// A version 4 UUID from the record's draws, "8-4-4-4-12" lower-case hex. Written into a
// fixed buffer: appending character by character cost ~880 instructions per record
// (callgrind, bench/instructions.py), a fifth of generating and encoding a transaction.
inline void uuid_v4(Draws& d, char (&out)[36]) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::uint64_t hi = d.next(), lo = d.next();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  std::size_t n = 0;
  for (int i = 15; i >= 0; --i) {
    out[n++] = kHex[(hi >> (i * 4)) & 0xf];
    if (i == 8 || i == 4) out[n++] = '-';
  }
  out[n++] = '-';
  for (int i = 15; i >= 0; --i) {
    out[n++] = kHex[(lo >> (i * 4)) & 0xf];
    if (i == 12) out[n++] = '-';
  }
}

inline std::string uuid_v4(Draws& d) {
  char out[36];
  uuid_v4(d, out);
  return std::string(out, sizeof out);
}

}  // namespace pipehost::datagen
