#include "binary_check.hpp"

#include <string>

#include <pipehost/status.hpp>

namespace pipehost::avro {
namespace {

class Walk {
 public:
  Walk(std::string_view data, const BinaryLimits& limits)
      : begin_(reinterpret_cast<const unsigned char*>(data.data())),
        p_(begin_),
        end_(begin_ + data.size()),
        limits_(limits) {}

  void value(avro_schema_t s, int depth) {
    switch (avro_typeof(s)) {
      case AVRO_NULL: return;
      case AVRO_BOOLEAN: return skip(1, "a boolean");
      case AVRO_INT32:
      case AVRO_INT64: (void)read_long("an integer"); return;
      case AVRO_FLOAT: return skip(4, "a float");
      case AVRO_DOUBLE: return skip(8, "a double");
      case AVRO_STRING:
      case AVRO_BYTES: {
        const std::int64_t n = read_long("a length");
        if (n < 0) fail("a negative length " + std::to_string(n));
        return skip(static_cast<std::uint64_t>(n), "a string or bytes value");
      }
      case AVRO_FIXED: return skip(static_cast<std::uint64_t>(avro_schema_fixed_size(s)), "a fixed value");
      case AVRO_ENUM: {
        const std::int64_t i = read_long("an enum index");
        if (i < 0 || i >= avro_schema_enum_number_of_symbols(s))
          fail("enum index " + std::to_string(i) + " names no symbol");
        return;
      }
      case AVRO_RECORD: {
        nest(depth);
        const std::size_t n = avro_schema_record_size(s);
        // A record costs its fields: an array of records of null fields takes no bytes
        // per item, yet each decodes to a struct (4 bytes made 2.5 GB when only items counted).
        charge(n);
        for (std::size_t i = 0; i < n; ++i)
          value(avro_schema_record_field_get_by_index(s, static_cast<int>(i)), depth + 1);
        return;
      }
      case AVRO_UNION: {
        nest(depth);
        const std::int64_t b = read_long("a union branch");
        if (b < 0 || static_cast<std::uint64_t>(b) >= avro_schema_union_size(s))
          fail("union branch " + std::to_string(b) + " does not exist");
        return value(avro_schema_union_branch(s, static_cast<int>(b)), depth + 1);
      }
      case AVRO_ARRAY:
      case AVRO_MAP: {
        nest(depth);
        const bool map = avro_typeof(s) == AVRO_MAP;
        avro_schema_t items = map ? avro_schema_map_values(s) : avro_schema_array_items(s);
        for (;;) {
          std::int64_t count = read_long("a block count");
          if (count == 0) return;
          if (count < 0) {
            if (count == INT64_MIN) fail("a block count out of range");
            count = -count;
            const std::int64_t size = read_long("a block size");
            if (size < 0 || static_cast<std::uint64_t>(size) > left()) fail("a block size past the end");
          }
          charge(static_cast<std::uint64_t>(count));
          for (std::int64_t i = 0; i < count; ++i) {
            if (map) {
              const std::int64_t n = read_long("a map key length");
              if (n < 0) fail("a negative map key length");
              skip(static_cast<std::uint64_t>(n), "a map key");
            }
            value(items, depth + 1);
          }
        }
      }
      case AVRO_LINK: return value(avro_schema_link_target(s), depth);
      default: fail("a value of a type pipehost cannot read");
    }
  }

  void finish() const {
    if (p_ != end_) fail(std::to_string(end_ - p_) + " bytes after the end of the value");
  }

 private:
  std::uint64_t left() const { return static_cast<std::uint64_t>(end_ - p_); }

  void charge(std::uint64_t n) {
    elements_ += n;
    if (elements_ > limits_.max_elements)
      fail("more than " + std::to_string(limits_.max_elements) +
           " array items, map entries and record fields (option max_elements)");
  }

  void nest(int depth) const {
    if (depth >= limits_.max_depth)
      fail("values nested deeper than " + std::to_string(limits_.max_depth));
  }

  void skip(std::uint64_t n, const char* what) {
    if (n > left()) fail(std::string(what) + " of " + std::to_string(n) + " bytes runs past the end");
    p_ += n;
  }

  std::int64_t read_long(const char* what) {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) fail(std::string(what) + " runs past the end");
      const unsigned char b = *p_++;
      v |= std::uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) return static_cast<std::int64_t>((v >> 1) ^ (~(v & 1) + 1));
    }
    fail(std::string(what) + " is a varint longer than 10 bytes");
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw InvalidRecord("not an Avro value of the writer's schema: " + what + " (at byte " +
                        std::to_string(p_ - begin_) + " of the Avro data)");
  }

  const unsigned char* begin_;
  const unsigned char* p_;
  const unsigned char* end_;
  const BinaryLimits& limits_;
  std::uint64_t elements_ = 0;
};

}  // namespace

void check_binary(avro_schema_t writer, std::string_view data, const BinaryLimits& limits) {
  Walk walk(data, limits);
  walk.value(writer, 0);
  walk.finish();
}

}  // namespace pipehost::avro
