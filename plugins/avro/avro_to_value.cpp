// Avro values read into the SDK's Value (ToValue).
#include "avro_value.hpp"

#include <optional>

#include <pipehost/float_as_written.hpp>
#include <pipehost/status.hpp>
#include <pipehost/utf8.hpp>

namespace pipehost::avro {

namespace {
// The decimal scale of a field's type: a fixed named as a decimal, or a union branch that is.
std::optional<int> decimal_fixed_scale(avro_schema_t type, const SchemaNotes& notes) {
  if (notes.decimal_fixed.empty()) return std::nullopt;
  if (avro_typeof(type) == AVRO_LINK) type = avro_schema_link_target(type);
  if (avro_typeof(type) == AVRO_FIXED) {
    auto it = notes.decimal_fixed.find(full_name(type));
    if (it != notes.decimal_fixed.end()) return it->second.scale;
  }
  if (avro_typeof(type) == AVRO_UNION)
    for (std::size_t b = 0; b < avro_schema_union_size(type); ++b)
      if (auto scale = decimal_fixed_scale(avro_schema_union_branch(type, static_cast<int>(b)), notes)) return scale;
  return std::nullopt;
}

// A decimal's big-endian two's-complement unscaled integer as exact text ("-12.3400").
// Past 16 bytes (39 digits, beyond Avro's usual precision 38): nullopt, the bytes stay.
std::optional<std::string> decimal_text(std::string_view bytes, int scale) {
  if (bytes.size() > 16) return std::nullopt;
  __extension__ typedef unsigned __int128 uint128;  // GCC's
  uint128 bits = 0;
  for (unsigned char b : bytes) bits = (bits << 8) | b;
  const bool negative = !bytes.empty() && (static_cast<unsigned char>(bytes[0]) & 0x80);
  if (negative && bytes.size() < 16) bits |= ~static_cast<uint128>(0) << (8 * bytes.size());
  uint128 magnitude = negative ? ~bits + 1 : bits;
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(magnitude % 10)));
    magnitude /= 10;
  } while (magnitude > 0);
  if (scale > 0) {
    if (digits.size() <= static_cast<std::size_t>(scale))
      digits.insert(0, static_cast<std::size_t>(scale) - digits.size() + 1, '0');
    digits.insert(digits.size() - static_cast<std::size_t>(scale), 1, '.');
  }
  return negative ? "-" + digits : digits;
}
}  // namespace

const ToValue::RecordShape& ToValue::record_shape(avro_schema_t s) {
  auto it = records_.find(s);
  if (it != records_.end()) return it->second.second;
  std::vector<std::string> names;
  const size_t n = avro_schema_record_size(s);
  for (size_t i = 0; i < n; ++i) names.emplace_back(avro_schema_record_field_name(s, static_cast<int>(i)));
  RecordShape shape;
  if (notes_) {
    const std::string record = full_name(s);
    std::vector<Logical> logical(n, Logical::none);
    std::vector<int> scale(n, 0);
    bool any = false;
    for (size_t i = 0; i < n; ++i) {
      const auto key = std::make_pair(record, names[i]);
      if (notes_->millis_fields.count(key)) logical[i] = Logical::millis;
      else if (notes_->micros_fields.count(key)) logical[i] = Logical::micros;
      else if (auto d = notes_->decimal_fields.find(key); d != notes_->decimal_fields.end()) {
        logical[i] = Logical::decimal;
        scale[i] = d->second.scale;
      } else if (auto fixed = decimal_fixed_scale(avro_schema_record_field_get_by_index(s, static_cast<int>(i)), *notes_)) {
        logical[i] = Logical::decimal;
        scale[i] = *fixed;
      }
      any = any || logical[i] != Logical::none;
    }
    if (any) {
      // In a union only one branch carries the logical type: the long (a union holds one),
      // the bytes, or the decimal fixed. Another branch's long or bytes (an int, another
      // fixed) stays as read: converting by the field read an int 6 as a timestamp.
      std::vector<int> branch(n, -1);
      for (size_t i = 0; i < n; ++i) {
        avro_schema_t type = avro_schema_record_field_get_by_index(s, static_cast<int>(i));
        if (avro_typeof(type) == AVRO_LINK) type = avro_schema_link_target(type);
        if (logical[i] == Logical::none || avro_typeof(type) != AVRO_UNION) continue;
        for (size_t b = 0; b < avro_schema_union_size(type) && branch[i] < 0; ++b) {
          avro_schema_t t = avro_schema_union_branch(type, static_cast<int>(b));
          if (avro_typeof(t) == AVRO_LINK) t = avro_schema_link_target(t);
          const bool carries = logical[i] != Logical::decimal ? avro_typeof(t) == AVRO_INT64
                               : notes_->decimal_fields.count(std::make_pair(record, names[i]))
                                   ? avro_typeof(t) == AVRO_BYTES
                                   : avro_typeof(t) == AVRO_FIXED && decimal_fixed_scale(t, *notes_).has_value();
          if (carries) branch[i] = static_cast<int>(b);
        }
        if (branch[i] < 0) logical[i] = Logical::none;
      }
      shape.logical = std::move(logical);
      shape.scale = std::move(scale);
      shape.branch = std::move(branch);
    }
  }
  shape.schema = StructSchema::make(std::move(names), full_name(s));
  return records_.emplace(s, std::make_pair(Schema(avro_schema_incref(s)), std::move(shape))).first->second.second;
}

void ToValue::apply_logical(const RecordShape& shape, std::size_t field, Value& v, int branch) {
  if (shape.branch[field] >= 0 && branch != shape.branch[field]) return;  // another branch's value
  switch (shape.logical[field]) {
    case Logical::none:
      return;
    case Logical::millis:
      if (const auto* ms = v.as<std::int64_t>()) {
        std::int64_t micros = 0;
        if (__builtin_mul_overflow(*ms, std::int64_t{1000}, &micros))
          throw InvalidRecord("avro: timestamp-millis " + std::to_string(*ms) + " is out of range");
        v.set(Timestamp{micros});
      }
      return;
    case Logical::micros:
      if (const auto* us = v.as<std::int64_t>()) v.set(Timestamp{*us});
      return;
    case Logical::decimal:
      if (const auto* b = v.as<Bytes>())
        if (auto text = decimal_text(b->data, shape.scale[field])) v = std::move(*text);
      return;
  }
}

std::shared_ptr<const StructSchema> ToValue::map_schema(const std::vector<std::string>& keys) {
  auto it = maps_.find(keys);
  if (it != maps_.end()) return it->second;
  std::size_t key_bytes = 0;
  for (const auto& k : keys) key_bytes += k.size() + sizeof(std::string);
  // Few key sets are the common case; many big ones must not pile up (each a copy).
  if (maps_.size() > 1024 || maps_bytes_ + key_bytes > kMostMapKeyBytes) {
    maps_.clear();
    maps_bytes_ = 0;
  }
  maps_bytes_ += 2 * key_bytes;  // the map's key and the schema's names
  return maps_.emplace(keys, StructSchema::make(keys, std::string(StructSchema::kMap))).first->second;
}

void ToValue::into(avro_value_t& v, Value& out) {
  switch (avro_value_get_type(&v)) {
    case AVRO_STRING: {
      const char* s = nullptr;
      size_t size = 0;
      avro_value_get_string(&v, &s, &size);
      const std::string_view text(s, size ? size - 1 : 0);  // size counts the NUL
      // Avro C does not check: invalid UTF-8 would reach JSON output and text columns.
      if (!utf8::valid(text)) throw InvalidRecord("avro: a string that is not valid UTF-8");
      out.assign_string(text);
      return;
    }
    case AVRO_BYTES: {
      const void* b = nullptr;
      size_t size = 0;
      avro_value_get_bytes(&v, &b, &size);
      out.assign_bytes({static_cast<const char*>(b), size});
      return;
    }
    case AVRO_FIXED: {
      const void* b = nullptr;
      size_t size = 0;
      avro_value_get_fixed(&v, &b, &size);
      out.assign_bytes({static_cast<const char*>(b), size});
      return;
    }
    case AVRO_INT32: {
      int32_t i = 0;
      avro_value_get_int(&v, &i);
      out.set(std::int64_t{i});
      return;
    }
    case AVRO_INT64: {
      int64_t i = 0;
      avro_value_get_long(&v, &i);
      out.set(static_cast<std::int64_t>(i));
      return;
    }
    case AVRO_FLOAT: {
      float f = 0;
      avro_value_get_float(&v, &f);
      out.set(float_as_written(f));
      return;
    }
    case AVRO_DOUBLE: {
      double d = 0;
      avro_value_get_double(&v, &d);
      out.set(d);
      return;
    }
    case AVRO_BOOLEAN: {
      int b = 0;
      avro_value_get_boolean(&v, &b);
      out.set(b != 0);
      return;
    }
    case AVRO_NULL:
      if (!out.is_null()) out = Value();
      return;
    case AVRO_ENUM: {
      int symbol = 0;
      avro_value_get_enum(&v, &symbol);
      avro_schema_t schema = avro_value_get_schema(&v);
      if (symbol < 0 || symbol >= avro_schema_enum_number_of_symbols(schema))
        throw InvalidRecord("enum " + full_name(schema) + " has no symbol number " + std::to_string(symbol));
      if (const char* name = avro_schema_enum_get(schema, symbol))
        out.assign_string(name);
      else
        out = std::to_string(symbol);
      return;
    }
    case AVRO_ARRAY: {
      size_t n = 0;
      avro_value_get_size(&v, &n);
      List* list = out.as<List>();
      if (!list) {
        out = List();
        list = out.as<List>();
      }
      list->resize(n);  // elements it keeps keep their storage
      for (size_t i = 0; i < n; ++i) {
        avro_value_t child;
        avro_value_get_by_index(&v, i, &child, nullptr);
        into(child, (*list)[i]);
      }
      return;
    }
    case AVRO_MAP: {
      size_t n = 0;
      avro_value_get_size(&v, &n);
      std::vector<std::string> keys;
      std::vector<Value> values;
      for (size_t i = 0; i < n; ++i) {
        avro_value_t child;
        const char* key = nullptr;
        avro_value_get_by_index(&v, i, &child, &key);
        keys.emplace_back(key);
        if (!utf8::valid(keys.back())) throw InvalidRecord("avro: a map key that is not valid UTF-8");
        into(child, values.emplace_back());
      }
      out = Struct{map_schema(keys), std::move(values)};  // its keys make its schema: built anew
      return;
    }
    case AVRO_RECORD: {
      size_t n = 0;
      avro_value_get_size(&v, &n);
      const RecordShape& shape = record_shape(avro_value_get_schema(&v));
      Struct& s = out.overwrite_struct(shape.schema, n);
      for (size_t i = 0; i < n; ++i) {
        avro_value_t child;
        avro_value_get_by_index(&v, i, &child, nullptr);
        into(child, s.fields[i]);
        int branch = -1;
        if (!shape.logical.empty() && avro_value_get_type(&child) == AVRO_UNION)
          avro_value_get_discriminant(&child, &branch);
        if (!shape.logical.empty()) apply_logical(shape, i, s.fields[i], branch);
      }
      return;
    }
    case AVRO_UNION: {
      avro_value_t branch;
      avro_value_get_current_branch(&v, &branch);
      into(branch, out);
      return;
    }
    default:
      throw InvalidRecord("avro: a value of an unknown Avro type");
  }
}
}  // namespace pipehost::avro
