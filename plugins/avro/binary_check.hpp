// A linear walk over one Avro binary value, driven by its writer schema: it reads the
// value itself (read_binary), or checks it before Avro C reads it. Avro C trusts the lengths and block counts it reads: a string length of 2^40
// is malloc'ed before the bytes are found missing, and an array of nulls claiming 2^62
// items loops appending them. The walk checks every length against the bytes left,
// bounds the total of array and map items and record fields, the nesting depth, union branches and enum
// symbols, and that no bytes trail the value — so what reaches Avro C is well formed.
#pragma once
#include <avro.h>

#include <cstdint>
#include <string_view>

#include <pipehost/value.hpp>

namespace pipehost::avro {

struct BinaryLimits {
  std::uint64_t max_elements = 1'000'000;  // array items, map entries and record fields, per record
  int max_depth = 100;                     // nested records, arrays, maps and unions
};

// Throws InvalidRecord saying what is wrong and where (byte offset).
void check_binary(avro_schema_t writer, std::string_view data, const BinaryLimits& limits);

class ToValue;
// The same walk, writing the value as written into `out` in place (as ToValue::into
// does from Avro C's value; `shapes` keeps the struct schemas), for a decoder without a
// reader schema: with Avro C's avro_value_read and the conversion after it, seed 004's
// events cost 5,444 instructions per record to decode; in this one pass 1,697 (callgrind,
// bench/NOTES.md). A reader schema still goes through Avro C's resolution.
// On a throw `out` is left half written: the caller resets it.
void read_binary(avro_schema_t writer, std::string_view data, const BinaryLimits& limits,
                 ToValue& shapes, Value& out);

}  // namespace pipehost::avro
