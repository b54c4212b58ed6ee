// A 32-bit float field (protobuf `float`, Avro "float") as the double its shortest decimal
// text names: 0.1f is 0.1, not 0.10000000149011612. That is what the writer wrote, and
// what protobuf's JSON form and Avro's JSON encoding print; a sum of float amounts then
// rounds as written, as one of doubles does. The same float converts back exactly.
#pragma once
#include <charconv>
#include <cmath>

namespace pipehost {

inline double float_as_written(float f) {
  if (!std::isfinite(f)) return static_cast<double>(f);
  char text[32];
  const char* end = std::to_chars(text, text + sizeof text, f).ptr;
  double d = 0;
  std::from_chars(text, end, d);
  return d;
}

}  // namespace pipehost
