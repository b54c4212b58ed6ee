// The SDK's Value written as Avro binary against a schema (FromValue).
#include "avro_value.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <set>

#include <pipehost/status.hpp>
#include <pipehost/utf8.hpp>

namespace pipehost::avro {

namespace {

void put_long(std::string& out, std::int64_t v);

// How a value can be written as a union's branch: 2 as exactly its kind (a string as a
// string rather than bytes, a double as a double rather than a float, an integer as an
// int only when it fits, a string that is one of an enum's symbols as the enum), 1
// converted (bytes from a string, a float from a double...), 0 not at all.
int match(const Value& in, avro_schema_t branch) {
  const bool integer = in.is<std::int64_t>() || in.is<Timestamp>();
  switch (avro_typeof(branch)) {
    case AVRO_NULL: return in.is_null() ? 2 : 0;
    case AVRO_STRING: return in.is<std::string>() ? 2 : 0;
    case AVRO_BYTES: return in.is<Bytes>() ? 2 : in.is<std::string>() ? 1 : 0;
    case AVRO_FIXED: {
      const Bytes* b = in.as<Bytes>();
      if (b && static_cast<std::int64_t>(b->data.size()) == avro_schema_fixed_size(branch)) return 2;
      return b || in.is<std::string>() ? 1 : 0;
    }
    case AVRO_INT32: {
      const auto* i = in.as<std::int64_t>();
      if (i && *i >= std::numeric_limits<int32_t>::min() && *i <= std::numeric_limits<int32_t>::max()) return 2;
      return integer ? 1 : 0;
    }
    case AVRO_INT64: return integer ? 2 : 0;
    case AVRO_FLOAT: return in.is<double>() || in.is<std::int64_t>() ? 1 : 0;
    case AVRO_DOUBLE: return in.is<double>() ? 2 : in.is<std::int64_t>() ? 1 : 0;
    case AVRO_BOOLEAN: return in.is<bool>() ? 2 : 0;
    case AVRO_ENUM: {
      const auto* s = in.as<std::string>();
      if (!s) return 0;
      return avro_schema_enum_get_by_name(branch, s->c_str()) >= 0 ? 2 : 1;
    }
    case AVRO_ARRAY: return in.is<List>() ? 2 : 0;
    case AVRO_MAP:
    case AVRO_RECORD: return in.is<Struct>() ? 2 : 0;
    default: return 0;
  }
}

}  // namespace

// The first branch (in the schema's order) the value is exactly, else the first it can be
// converted to (a float, bytes from a string...); a branch that refuses the value (a
// record missing a field, a fixed of another size) makes way for the next. A struct a
// decoder read as a record goes to the record of that full name, one read as a map to a
// map (4: before anything else); otherwise a struct is exactly a record with its very
// fields (3: before a map or another record), a record whose fields it all has or a map
// (2), or a record it lacks fields of, as null (1). So a union of records and maps keeps
// the branch a decoded value came from.
void FromValue::write_union(const Value& in, avro_schema_t schema, std::string& out, const Path* where) {
  const size_t branches = avro_schema_union_size(schema);
  std::optional<InvalidRecord> first_refusal;
  const Struct* as_struct = in.as<Struct>();
  auto score = [&](avro_schema_t branch) {
    const avro_type_t type = avro_typeof(branch);
    if ((type == AVRO_BYTES || type == AVRO_FIXED) && (in.is<double>() || in.is<std::int64_t>()) &&
        decimal_at(branch, where))
      return 1;  // a number converted to a decimal
    if (as_struct && as_struct->schema) {
      const std::string& name = as_struct->schema->type_name();
      if (type == AVRO_MAP && name == StructSchema::kMap) return 4;
      if (type == AVRO_RECORD && !name.empty() && name == full_name(branch)) return 4;
    }
    if (!as_struct || type != AVRO_RECORD) return match(in, branch);
    const std::vector<int>& field_of = order(branch, *as_struct);
    const bool all = std::all_of(field_of.begin(), field_of.end(), [](int f) { return f >= 0; });
    return !all ? 1 : field_of.size() == as_struct->fields.size() ? 3 : 2;
  };
  // A conversion to a float branch (which may lose digits: 16777217 is 16777216 as a
  // float) is tried only after every other conversion, a double's first.
  struct Pass {
    int wanted;
    bool floats;
  };
  for (const Pass pass : {Pass{4, false}, Pass{3, false}, Pass{2, false}, Pass{1, false}, Pass{1, true}}) {
    const int wanted = pass.wanted;
    if (wanted >= 3 && !as_struct) continue;
    for (size_t b = 0; b < branches; ++b) {
      avro_schema_t branch = avro_schema_union_branch(schema, static_cast<int>(b));
      while (avro_typeof(branch) == AVRO_LINK) branch = avro_schema_link_target(branch);
      if (wanted == 1 && (avro_typeof(branch) == AVRO_FLOAT) != pass.floats) continue;
      if (score(branch) != wanted) continue;
      const std::size_t mark = out.size();
      try {
        put_long(out, static_cast<std::int64_t>(b));
        return write_binary(in, branch, out, where);
      } catch (const InvalidRecord& e) {
        // Bounded: nested unions of records that all refuse would try every combination.
        if (refusals_left_ == 0) throw;
        --refusals_left_;
        out.resize(mark);
        if (!first_refusal) first_refusal.emplace(e);
      }
    }
  }
  if (first_refusal) throw *first_refusal;
  refuse(where, in, "any branch of the union");
}

// Where a value is being written, from the top: spelled only for an error's message.
struct FromValue::Path {
  const Path* parent;
  avro_schema_t record = nullptr;  // a record's field: its schema and index
  std::size_t index = 0;           // or an array's item
  const std::string* key = nullptr;  // or a map's key
  bool item = false;
};
const Value* FromValue::default_of(avro_schema_t record, std::size_t field) const {
  static const Value kNull;
  if (!notes_ || notes_->defaults.empty()) return &kNull;
  auto it = notes_->defaults.find(
      std::make_pair(full_name(record), std::string(avro_schema_record_field_name(record, static_cast<int>(field)))));
  return it == notes_->defaults.end() ? &kNull : &it->second;
}

bool FromValue::in_fields(const std::set<std::pair<std::string, std::string>, std::less<>>* fields,
                          const Path* where) const {
  if (!fields || fields->empty() || !where || !where->record || where->item || where->key) return false;
  return fields->count(
             {full_name(where->record),
              avro_schema_record_field_name(where->record, static_cast<int>(where->index))}) > 0;
}

const SchemaNotes::Decimal* FromValue::decimal_at(avro_schema_t schema, const Path* where) const {
  if (!notes_) return nullptr;
  if (avro_typeof(schema) == AVRO_FIXED) {
    if (notes_->decimal_fixed.empty()) return nullptr;  // no name to build per record
    auto it = notes_->decimal_fixed.find(full_name(schema));
    return it == notes_->decimal_fixed.end() ? nullptr : &it->second;
  }
  if (notes_->decimal_fields.empty() || !where || !where->record || where->item || where->key) return nullptr;
  auto it = notes_->decimal_fields.find(
      std::make_pair(full_name(where->record),
                     std::string(avro_schema_record_field_name(where->record, static_cast<int>(where->index)))));
  return it == notes_->decimal_fields.end() ? nullptr : &it->second;
}

namespace {

// (Not the SDK's decimal::parse_units: it stops at 63 bits and 18 places, and a decimal's
// precision goes to 38 digits, written with exponents by some producers.)
// A decimal's unscaled integer as Avro writes it: big-endian two's complement, in the
// fewest bytes (bytes) or sign-extended to `size` (fixed). nullopt: the number does not
// parse, has more decimal places than the scale (nothing is rounded), more digits than the
// precision, or does not fit the fixed.
std::optional<std::string> decimal_bytes(std::string_view text, const SchemaNotes::Decimal& d, std::size_t size) {
  std::size_t i = 0;
  const bool negative = i < text.size() && text[i] == '-';
  if (i < text.size() && (text[i] == '-' || text[i] == '+')) ++i;
  std::string digits;
  int fraction = 0;
  bool point = false, any = false;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c >= '0' && c <= '9') {
      any = true;
      if (!(digits.empty() && c == '0')) digits += c;
      if (point) ++fraction;
    } else if (c == '.' && !point) {
      point = true;
    } else {
      break;
    }
  }
  long exponent = 0;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    const char* first = text.data() + i + 1 + (i + 1 < text.size() && text[i + 1] == '+');
    auto [end, ec] = std::from_chars(first, text.data() + text.size(), exponent);
    if (ec != std::errc() || end != text.data() + text.size() || exponent > 1000 || exponent < -1000) return std::nullopt;
    i = text.size();
  }
  if (!any || i != text.size()) return std::nullopt;
  // value = digits * 10^(exponent - fraction); unscaled = value * 10^scale.
  long shift = exponent - fraction + d.scale;
  while (shift < 0) {  // places past the scale: only zeros may go
    if (digits.empty()) break;
    if (digits.back() != '0') return std::nullopt;
    digits.pop_back();
    ++shift;
  }
  if (!digits.empty()) digits.append(static_cast<std::size_t>(std::max(shift, 0L)), '0');
  if (digits.size() > static_cast<std::size_t>(d.precision) || digits.size() > 38) return std::nullopt;
  __extension__ typedef __int128 int128;  // GCC's: 38 digits fit
  int128 unscaled = 0;
  for (char c : digits) unscaled = unscaled * 10 + (c - '0');
  if (negative) unscaled = -unscaled;
  std::string out(16, '\0');
  for (int k = 15; k >= 0; --k, unscaled >>= 8) out[static_cast<std::size_t>(k)] = static_cast<char>(unscaled & 0xff);
  std::size_t skip = 0;  // leading bytes that only repeat the sign
  while (skip + 1 < out.size() &&
         ((out[skip] == '\0' && !(out[skip + 1] & 0x80)) || (out[skip] == '\xff' && (out[skip + 1] & 0x80))))
    ++skip;
  out.erase(0, skip);
  if (size == 0) return out;
  if (out.size() > size) return std::nullopt;
  return std::string(size - out.size(), (out[0] & 0x80) ? '\xff' : '\0') + out;
}

}  // namespace

void FromValue::refuse(const Path* where, const Value& got, const char* wanted) {
  std::vector<const Path*> chain;
  for (const Path* p = where; p; p = p->parent) chain.push_back(p);
  std::string path;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    const Path& p = **it;
    if (p.item) {
      path += "[" + std::to_string(p.index) + "]";
      continue;
    }
    if (!path.empty()) path += ".";
    if (p.key) path += *p.key;
    else path += avro_schema_record_field_name(p.record, static_cast<int>(p.index));
  }
  const std::string what = path.empty() ? std::string("the value") : "field '" + path + "'";
  // A field the value lacks reads as null: say so, not that it is of another type.
  if (got.is_null())
    throw InvalidRecord("avro: " + what + " has no value (missing or null), and the schema wants " + wanted);
  throw InvalidRecord("avro: " + what + " is not " + wanted);
}

const std::vector<int>& FromValue::order(avro_schema_t record, const Struct& from) {
  const OrderKey key{record, from.schema.get()};
  if (last_ && key == last_key_) return last_->field_of;
  auto it = orders_.find(key);
  if (it == orders_.end()) {
    Order o{from.schema, {}};
    const size_t n = avro_schema_record_size(record);
    for (size_t i = 0; i < n; ++i) {
      const char* name = avro_schema_record_field_name(record, static_cast<int>(i));
      const auto at = from.schema ? from.schema->index_of(name) : std::nullopt;
      o.field_of.push_back(at ? static_cast<int>(*at) : -1);
    }
    it = orders_.emplace(key, std::move(o)).first;
  }
  last_ = &it->second;
  last_key_ = key;
  return last_->field_of;
}

namespace {

// Avro's zig-zag varint.
void put_long(std::string& out, std::int64_t v) {
  auto u = (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
  char buf[10];
  std::size_t n = 0;
  while (u >= 0x80) {
    buf[n++] = static_cast<char>((u & 0x7f) | 0x80);
    u >>= 7;
  }
  buf[n++] = static_cast<char>(u);
  out.append(buf, n);
}

void put_bytes(std::string& out, std::string_view b) {
  put_long(out, static_cast<std::int64_t>(b.size()));
  out.append(b);
}

}  // namespace

void FromValue::write_binary(const Value& in, avro_schema_t schema, std::string& out, const Path* where) {
  switch (avro_typeof(schema)) {
    case AVRO_NULL:
      if (!in.is_null()) refuse(where, in, "null");
      return;
    case AVRO_STRING:
      if (const auto* s = in.as<std::string>()) {
        // Avro strings are UTF-8: fastavro refuses other bytes, Java replaces them.
        if (!utf8::valid(*s)) refuse(where, in, "valid UTF-8 text (an Avro string)");
        return put_bytes(out, *s);
      }
      refuse(where, in, "a string");
    case AVRO_BYTES:
    case AVRO_FIXED: {
      if (!in.is<Bytes>()) {
        if (const SchemaNotes::Decimal* d = decimal_at(schema, where)) {
          // A number, or decimal text, is its unscaled integer; bytes are taken as that
          // integer already. (The text's own bytes were written before: fastavro read
          // "12.34" back as 2112952861.)
          std::string text;
          if (const auto* s = in.as<std::string>()) text = *s;
          else if (const auto* i = in.as<std::int64_t>()) text = std::to_string(*i);
          else if (const auto* x = in.as<double>(); x && std::isfinite(*x)) {
            char buf[32];
            text.assign(buf, std::to_chars(buf, buf + sizeof buf, *x).ptr);  // shortest: 0.1 is "0.1"
          } else {
            refuse(where, in, "a decimal (a number, decimal text, or its unscaled bytes)");
          }
          const std::size_t size = avro_typeof(schema) == AVRO_FIXED ? static_cast<std::size_t>(avro_schema_fixed_size(schema)) : 0;
          const auto unscaled = decimal_bytes(text, *d, size);
          if (!unscaled) {
            const std::string wanted = "a decimal of precision " + std::to_string(d->precision) + " and scale " +
                                       std::to_string(d->scale) + " (at most " + std::to_string(d->scale) +
                                       " decimal places; nothing is rounded)";
            refuse(where, in, wanted.c_str());
          }
          if (size == 0) return put_bytes(out, *unscaled);
          out.append(*unscaled);
          return;
        }
      }
      const std::string* b = in.is<Bytes>() ? &in.as<Bytes>()->data : in.as<std::string>();
      if (!b) refuse(where, in, "bytes");
      if (avro_typeof(schema) == AVRO_BYTES) return put_bytes(out, *b);
      if (static_cast<std::int64_t>(b->size()) != avro_schema_fixed_size(schema))
        refuse(where, in, "bytes of the fixed size");
      out.append(*b);
      return;
    }
    case AVRO_INT32:
    case AVRO_INT64: {
      std::int64_t n = 0;
      if (const auto* i = in.as<std::int64_t>()) n = *i;
      else if (const auto* t = in.as<Timestamp>()) {  // epoch ms, or micros or nanos where the schema says
        if (in_nanos(where)) {
          if (__builtin_mul_overflow(t->micros_since_epoch, std::int64_t{1000}, &n))
            refuse(where, in, "a timestamp within years 1677-2262 (timestamp-nanos)");
        } else {
          n = in_micros(where) ? t->micros_since_epoch
                               : t->micros_since_epoch / 1000 - (t->micros_since_epoch % 1000 < 0 ? 1 : 0);
        }
      } else {
        refuse(where, in, "an integer");
      }
      if (avro_typeof(schema) == AVRO_INT32 &&
          (n < std::numeric_limits<int32_t>::min() || n > std::numeric_limits<int32_t>::max()))
        refuse(where, in, "an integer that fits 32 bits");
      return put_long(out, n);
    }
    case AVRO_FLOAT:
    case AVRO_DOUBLE: {
      double d = 0;
      if (const auto* x = in.as<double>()) d = *x;
      else if (const auto* i = in.as<std::int64_t>()) d = static_cast<double>(*i);
      else refuse(where, in, "a number");
      static_assert(std::endian::native == std::endian::little, "Avro's floats and doubles are little-endian");
      if (avro_typeof(schema) == AVRO_DOUBLE) {
        out.append(reinterpret_cast<const char*>(&d), sizeof d);
      } else {
        // A finite number past a float's range would be written as an infinity. Not one
        // that rounds to the largest float: the decoder gives a float as its shortest text
        // (3.4028235e38 for the largest, a little above it as a double).
        const float f = static_cast<float>(d);
        if (std::isfinite(d) && std::isinf(f))
          refuse(where, in, "a number within a float's range (about ±3.4e38)");
        out.append(reinterpret_cast<const char*>(&f), sizeof f);
      }
      return;
    }
    case AVRO_BOOLEAN:
      if (const auto* b = in.as<bool>()) {
        out.push_back(*b ? 1 : 0);
        return;
      }
      refuse(where, in, "a boolean");
    case AVRO_ENUM: {
      const auto* s = in.as<std::string>();
      const int symbol = s ? avro_schema_enum_get_by_name(schema, s->c_str()) : -1;
      if (symbol < 0) refuse(where, in, "one of the enum's symbols");
      return put_long(out, symbol);
    }
    case AVRO_ARRAY: {
      const List* list = in.as<List>();
      if (!list) refuse(where, in, "a list");
      avro_schema_t items = avro_schema_array_items(schema);
      if (!list->empty()) put_long(out, static_cast<std::int64_t>(list->size()));  // one block
      for (std::size_t i = 0; i < list->size(); ++i) {
        const Path item{where, nullptr, i, nullptr, true};
        write_binary((*list)[i], items, out, &item);
      }
      return put_long(out, 0);
    }
    case AVRO_MAP: {
      const Struct* s = in.as<Struct>();
      if (!s || !s->schema || s->schema->names().size() < s->fields.size()) refuse(where, in, "a struct (a map)");
      avro_schema_t values = avro_schema_map_values(schema);
      if (!s->fields.empty()) put_long(out, static_cast<std::int64_t>(s->fields.size()));
      for (std::size_t i = 0; i < s->fields.size(); ++i) {
        const std::string& key = s->schema->names()[i];
        put_bytes(out, key);
        const Path entry{where, nullptr, 0, &key};
        write_binary(s->fields[i], values, out, &entry);
      }
      return put_long(out, 0);
    }
    case AVRO_RECORD: {
      const Struct* s = in.as<Struct>();
      if (!s) refuse(where, in, "a struct");
      const std::vector<int>& field_of = order(schema, *s);
      static const Value kNull;
      for (size_t i = 0; i < field_of.size(); ++i) {
        const int from = field_of[i];
        const Path field{where, schema, i};
        const Value* value = &kNull;
        if (from >= 0 && static_cast<std::size_t>(from) < s->fields.size()) value = &s->fields[from];
        else value = default_of(schema, i);  // a field the value lacks
        write_binary(*value, avro_schema_record_field_get_by_index(schema, static_cast<int>(i)), out, &field);
      }
      return;
    }
    case AVRO_UNION:
      return write_union(in, schema, out, where);
    case AVRO_LINK:
      return write_binary(in, avro_schema_link_target(schema), out, where);
    default:
      refuse(where, in, "of a supported Avro type");
  }
}

}  // namespace pipehost::avro
