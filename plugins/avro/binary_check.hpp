// A linear walk over one Avro binary value, driven by its writer schema, before Avro C
// reads it. Avro C trusts the lengths and block counts it reads: a string length of 2^40
// is malloc'ed before the bytes are found missing, and an array of nulls claiming 2^62
// items loops appending them. The walk checks every length against the bytes left,
// bounds the total of array and map items and record fields, the nesting depth, union branches and enum
// symbols, and that no bytes trail the value — so what reaches Avro C is well formed.
#pragma once
#include <avro.h>

#include <cstdint>
#include <string_view>

namespace pipehost::avro {

struct BinaryLimits {
  std::uint64_t max_elements = 1'000'000;  // array items, map entries and record fields, per record
  int max_depth = 100;                     // nested records, arrays, maps and unions
};

// Throws InvalidRecord saying what is wrong and where (byte offset).
void check_binary(avro_schema_t writer, std::string_view data, const BinaryLimits& limits);

}  // namespace pipehost::avro
