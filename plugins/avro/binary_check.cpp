#include "binary_check.hpp"

#include <bit>
#include <cstring>
#include <algorithm>
#include <string>
#include <map>
#include <vector>

#include <pipehost/float_as_written.hpp>
#include <pipehost/status.hpp>
#include <pipehost/utf8.hpp>

#include "avro_value.hpp"

static_assert(std::endian::native == std::endian::little, "Avro's floats and doubles are little-endian");

namespace pipehost::avro {
namespace {

// `out` null: checks only. Otherwise also writes the value into *out in place, as
// ToValue::into does from Avro C's value (strings, lists and structs keep their storage).
class Walk {
 public:
  Walk(std::string_view data, const BinaryLimits& limits, ToValue* shapes = nullptr)
      : begin_(reinterpret_cast<const unsigned char*>(data.data())),
        p_(begin_),
        end_(begin_ + data.size()),
        limits_(limits),
        shapes_(shapes) {}

  void value(avro_schema_t s, int depth, Value* out) {
    switch (avro_typeof(s)) {
      case AVRO_NULL:
        if (out && !out->is_null()) *out = Value();
        return;
      case AVRO_BOOLEAN: {
        const bool b = *take(1, "a boolean") != 0;  // as Avro C: any byte but 0 is true
        if (out) out->set(b);
        return;
      }
      case AVRO_INT32: {
        const std::int64_t i = read_long("an integer");
        // Avro C would keep the low 32 bits of a wider varint: another number.
        if (i < INT32_MIN || i > INT32_MAX) fail("an int out of the 32-bit range: " + std::to_string(i));
        if (out) out->set(i);
        return;
      }
      case AVRO_INT64: {
        const std::int64_t i = read_long("an integer");
        if (out) out->set(i);
        return;
      }
      case AVRO_FLOAT: {
        float f;
        std::memcpy(&f, take(4, "a float"), 4);
        if (out) out->set(float_as_written(f));
        return;
      }
      case AVRO_DOUBLE: {
        double d;
        std::memcpy(&d, take(8, "a double"), 8);
        if (out) out->set(d);
        return;
      }
      case AVRO_STRING:
      case AVRO_BYTES: {
        const std::int64_t n = read_long("a length");
        if (n < 0) fail("a negative length " + std::to_string(n));
        const std::string_view bytes = view(static_cast<std::uint64_t>(n), "a string or bytes value");
        if (!out) return;
        if (avro_typeof(s) == AVRO_BYTES) return out->assign_bytes(bytes);
        // Avro C does not check: invalid UTF-8 would reach JSON output and text columns.
        if (!utf8::valid(bytes)) fail("a string that is not valid UTF-8");
        return out->assign_string(bytes);
      }
      case AVRO_FIXED: {
        const std::string_view bytes = view(static_cast<std::uint64_t>(avro_schema_fixed_size(s)), "a fixed value");
        if (out) out->assign_bytes(bytes);
        return;
      }
      case AVRO_ENUM: {
        const std::int64_t i = read_long("an enum index");
        if (i < 0 || i >= avro_schema_enum_number_of_symbols(s))
          fail("enum index " + std::to_string(i) + " names no symbol");
        if (out) out->assign_string(avro_schema_enum_get(s, static_cast<int>(i)));
        return;
      }
      case AVRO_RECORD: {
        nest(depth);
        const std::size_t n = avro_schema_record_size(s);
        // A record costs its fields: an array of records of null fields takes no bytes
        // per item, yet each decodes to a struct (4 bytes made 2.5 GB when only items counted).
        charge(n);
        const ToValue::RecordShape* shape = out ? &shapes_->record_shape(s) : nullptr;
        Struct* fields = out ? &out->overwrite_struct(shape->schema, n) : nullptr;
        for (std::size_t i = 0; i < n; ++i) {
          // A union field's branch, peeked: its logical type belongs to one branch only.
          int branch = -1;
          if (shape && !shape->logical.empty() && shape->branch[i] >= 0) {
            const unsigned char* at = p_;
            const std::int64_t b = read_long("a union branch");
            p_ = at;
            branch = b >= 0 && b <= INT32_MAX ? static_cast<int>(b) : -1;
          }
          value(avro_schema_record_field_get_by_index(s, static_cast<int>(i)), depth + 1,
                fields ? &fields->fields[i] : nullptr);
          if (shape && !shape->logical.empty()) ToValue::apply_logical(*shape, i, fields->fields[i], branch);
        }
        return;
      }
      case AVRO_UNION: {
        nest(depth);
        const std::int64_t b = read_long("a union branch");
        if (b < 0 || static_cast<std::uint64_t>(b) >= avro_schema_union_size(s))
          fail("union branch " + std::to_string(b) + " does not exist");
        return value(avro_schema_union_branch(s, static_cast<int>(b)), depth + 1, out);  // the branch's value
      }
      case AVRO_ARRAY:
        return array(s, depth, out);
      case AVRO_MAP:
        return map(s, depth, out);
      case AVRO_LINK: return value(avro_schema_link_target(s), depth, out);
      default: fail("a value of a type pipehost cannot read");
    }
  }

  void finish() const {
    if (p_ != end_) fail(std::to_string(end_ - p_) + " bytes after the end of the value");
  }

 private:
  std::uint64_t left() const { return static_cast<std::uint64_t>(end_ - p_); }

  // The items of the next block of an array or map, 0 at the end (each block is a count,
  // negative with its size in bytes following).
  std::uint64_t block() {
    std::int64_t count = read_long("a block count");
    if (count < 0) {
      if (count == INT64_MIN) fail("a block count out of range");
      count = -count;
      const std::int64_t size = read_long("a block size");
      if (size < 0 || static_cast<std::uint64_t>(size) > left()) fail("a block size past the end");
    }
    charge(static_cast<std::uint64_t>(count));
    return static_cast<std::uint64_t>(count);
  }

  void array(avro_schema_t s, int depth, Value* out) {
    nest(depth);
    avro_schema_t items = avro_schema_array_items(s);
    List* list = nullptr;
    if (out) {
      list = out->as<List>();
      if (!list) list = &std::get<List>(out->variant() = List());
    }
    std::size_t used = 0;
    while (const std::uint64_t count = block()) {
      for (std::uint64_t i = 0; i < count; ++i, ++used) {
        // Grown as items are read (a count is only a claim), keeping the items it has.
        if (list && list->size() <= used) list->emplace_back();
        const unsigned char* before = p_;
        value(items, depth + 1, list ? &(*list)[used] : nullptr);
        // A null (or empty record, or fixed of 0 bytes) takes no byte: without this, 9
        // bytes could claim a million items, ~50 MB of values.
        if (p_ == before && ++empty_items_ > kMostEmptyItems)
          fail("more than " + std::to_string(kMostEmptyItems) +
               " array items of no bytes (nulls, empty records) in one record");
      }
    }
    if (list) list->resize(used);
  }

  // A map becomes a struct keyed by its keys, built anew (its keys make its schema).
  void map(avro_schema_t s, int depth, Value* out) {
    nest(depth);
    avro_schema_t items = avro_schema_map_values(s);
    std::vector<std::string> keys;
    std::vector<std::string_view> seen;  // the keys where they are in the data
    std::vector<Value> values;
    // key -> entry, past kIndexedKeys keys. Ordered, not hashed: std::hash's seed is fixed,
    // so a record of keys that collide would cost its size squared.
    std::map<std::string_view, std::size_t> at;
    constexpr std::size_t kIndexedKeys = 16;
    while (const std::uint64_t count = block()) {
      for (std::uint64_t i = 0; i < count; ++i) {
        const std::int64_t n = read_long("a map key length");
        if (n < 0) fail("a negative map key length");
        const std::string_view key = view(static_cast<std::uint64_t>(n), "a map key");
        if (!out) {
          value(items, depth + 1, nullptr);
          continue;
        }
        if (!utf8::valid(key)) fail("a map key that is not valid UTF-8");
        // A key written twice keeps its first place and takes the later value, as Avro C's
        // map does (found in `at` past a few keys: a big map must not cost its size squared).
        std::size_t entry = seen.size();
        if (seen.size() < kIndexedKeys) {
          entry = static_cast<std::size_t>(std::find(seen.begin(), seen.end(), key) - seen.begin());
        } else {
          if (at.empty())
            for (std::size_t k = 0; k < seen.size(); ++k) at.emplace(seen[k], k);
          entry = at.emplace(key, seen.size()).first->second;
        }
        if (entry == seen.size()) {
          seen.push_back(key);
          keys.emplace_back(key);
          values.emplace_back();
        }
        value(items, depth + 1, &values[entry]);
      }
    }
    if (out) *out = Struct{shapes_->map_schema(keys), std::move(values)};
  }

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

  const unsigned char* take(std::uint64_t n, const char* what) {
    if (n > left()) fail(std::string(what) + " of " + std::to_string(n) + " bytes runs past the end");
    const unsigned char* at = p_;
    p_ += n;
    return at;
  }
  std::string_view view(std::uint64_t n, const char* what) {
    return {reinterpret_cast<const char*>(take(n, what)), static_cast<std::size_t>(n)};
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
  ToValue* shapes_;
  std::uint64_t elements_ = 0;
  static constexpr std::uint64_t kMostEmptyItems = 1024;
  std::uint64_t empty_items_ = 0;
};

}  // namespace

void check_binary(avro_schema_t writer, std::string_view data, const BinaryLimits& limits) {
  Walk walk(data, limits);
  walk.value(writer, 0, nullptr);
  walk.finish();
}

void read_binary(avro_schema_t writer, std::string_view data, const BinaryLimits& limits,
                 ToValue& shapes, Value& out) {
  Walk walk(data, limits, &shapes);
  walk.value(writer, 0, &out);
  walk.finish();
}

}  // namespace pipehost::avro
