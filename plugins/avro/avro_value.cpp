#include "avro_value.hpp"

#include <algorithm>
#include <bit>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include <pipehost/float_as_written.hpp>
#include <pipehost/status.hpp>
#include <pipehost/utf8.hpp>

namespace pipehost::avro {

OwnedValue::OwnedValue(avro_value_iface_t* iface) {
  if (avro_generic_value_new(iface, &value_) != 0) throw std::runtime_error("avro: " + avro_error());
}

std::string avro_error() {
  const char* e = avro_strerror();
  return e && *e ? e : "unknown Avro error";
}

namespace {
// Avro C parses schemas with jansson, which refuses "\u0000" in a JSON string unless
// asked not to (JSON_ALLOW_NUL), and Avro C does not ask: a valid schema whose default
// or doc holds a NUL (a zero decimal's default "\u0000", common) was refused. Avro C
// reads no default or doc (names and symbols cannot hold one), so the copy it parses
// has those escapes as "\u0001"; defaults are read from the original text.
std::string without_nul_escapes(std::string_view json) {
  std::string out;
  out.reserve(json.size());
  bool in_string = false;
  for (std::size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (!in_string) {
      in_string = c == '"';
      out += c;
      continue;
    }
    if (c == '"') {
      in_string = false;
      out += c;
    } else if (c == '\\' && i + 1 < json.size()) {
      if (json.substr(i + 1, 5) == "u0000") {
        out += "\\u0001";
        i += 5;
      } else {
        out += c;
        out += json[++i];
      }
    } else {
      out += c;
    }
  }
  return out;
}
}  // namespace

Schema parse_schema(std::string_view json) {
  std::string without_nul;
  std::string_view text = json;
  if (json.find("\\u0000") != std::string_view::npos) text = without_nul = without_nul_escapes(json);
  avro_schema_t s = nullptr;
  if (avro_schema_from_json_length(text.data(), text.size(), &s) != 0) {
    // Avro C's (jansson's) message has no position: where the JSON breaks, if it does.
    std::string where;
    try {
      const auto parsed = nlohmann::json::parse(json.begin(), json.end());
      (void)parsed;
    } catch (const nlohmann::json::parse_error& e) {
      std::size_t line = 1, column = 1;
      for (std::size_t i = 0; i + 1 < e.byte && i < json.size(); ++i)
        json[i] == '\n' ? (++line, column = 1) : ++column;
      where = " (the JSON breaks at line " + std::to_string(line) + ", column " + std::to_string(column) + ")";
    }
    throw std::runtime_error("not an Avro schema: " + avro_error() + where);
  }
  return Schema(s);
}

namespace {

std::string full_name(avro_schema_t named) {
  const char* space = avro_schema_namespace(named);
  return space && *space ? std::string(space) + "." + avro_schema_name(named) : avro_schema_name(named);
}

// The schema as JSON text, each named type defined where it is first used (names,
// symbols and field names are Avro identifiers: nothing to escape). What Avro C does not
// keep (defaults, logical types, docs) is not written; Avro C reads none of it.
void write_inline_json(avro_schema_t s, std::set<std::string>& defined, std::string& out) {
  if (is_avro_link(s)) s = avro_schema_link_target(s);
  if (is_avro_named_type(s) && !defined.insert(full_name(s)).second) {
    out += "\"" + full_name(s) + "\"";
    return;
  }
  switch (avro_typeof(s)) {
    case AVRO_RECORD: {
      out += "{\"type\":\"record\",\"name\":\"" + full_name(s) + "\",\"fields\":[";
      const auto n = avro_schema_record_size(s);
      for (std::size_t i = 0; i < n; ++i) {
        out += std::string(i ? "," : "") + "{\"name\":\"" +
               avro_schema_record_field_name(s, static_cast<int>(i)) + "\",\"type\":";
        write_inline_json(avro_schema_record_field_get_by_index(s, static_cast<int>(i)), defined, out);
        out += "}";
      }
      out += "]}";
      return;
    }
    case AVRO_ENUM: {
      out += "{\"type\":\"enum\",\"name\":\"" + full_name(s) + "\",\"symbols\":[";
      for (int i = 0; i < avro_schema_enum_number_of_symbols(s); ++i)
        out += std::string(i ? "," : "") + "\"" + avro_schema_enum_get(s, i) + "\"";
      out += "]}";
      return;
    }
    case AVRO_FIXED:
      out += "{\"type\":\"fixed\",\"name\":\"" + full_name(s) +
             "\",\"size\":" + std::to_string(avro_schema_fixed_size(s)) + "}";
      return;
    case AVRO_ARRAY:
      out += "{\"type\":\"array\",\"items\":";
      write_inline_json(avro_schema_array_items(s), defined, out);
      out += "}";
      return;
    case AVRO_MAP:
      out += "{\"type\":\"map\",\"values\":";
      write_inline_json(avro_schema_map_values(s), defined, out);
      out += "}";
      return;
    case AVRO_UNION: {
      out += "[";
      const auto n = avro_schema_union_size(s);
      for (std::size_t i = 0; i < n; ++i) {
        if (i) out += ",";
        write_inline_json(avro_schema_union_branch(s, static_cast<int>(i)), defined, out);
      }
      out += "]";
      return;
    }
    default:  // a primitive
      out += "\"" + std::string(avro_schema_type_name(s)) + "\"";
  }
}

// Every enum a schema reaches, by full name.
void collect_enums(avro_schema_t s, std::map<std::string, avro_schema_t>& enums, std::set<std::string>& seen) {
  if (is_avro_link(s)) s = avro_schema_link_target(s);
  if (is_avro_named_type(s) && !seen.insert(full_name(s)).second) return;
  switch (avro_typeof(s)) {
    case AVRO_RECORD:
      for (std::size_t i = 0; i < avro_schema_record_size(s); ++i)
        collect_enums(avro_schema_record_field_get_by_index(s, static_cast<int>(i)), enums, seen);
      return;
    case AVRO_ENUM:
      enums[full_name(s)] = s;
      return;
    case AVRO_ARRAY:
      return collect_enums(avro_schema_array_items(s), enums, seen);
    case AVRO_MAP:
      return collect_enums(avro_schema_map_values(s), enums, seen);
    case AVRO_UNION:
      for (std::size_t i = 0; i < avro_schema_union_size(s); ++i)
        collect_enums(avro_schema_union_branch(s, static_cast<int>(i)), enums, seen);
      return;
    default:
      return;
  }
}

}  // namespace

std::string enums_read_by_position(avro_schema_t writer, avro_schema_t reader) {
  std::map<std::string, avro_schema_t> written, read;
  std::set<std::string> seen;
  collect_enums(writer, written, seen);
  seen.clear();
  collect_enums(reader, read, seen);
  std::map<std::string, avro_schema_t> read_short;  // the spec lets a reader match by unqualified name
  for (const auto& [name, r] : read) read_short[avro_schema_name(r)] = r;
  for (const auto& [name, w] : written) {
    avro_schema_t r = nullptr;
    if (auto full = read.find(name); full != read.end()) r = full->second;
    else if (auto short_name = read_short.find(avro_schema_name(w)); short_name != read_short.end())
      r = short_name->second;
    if (!r) continue;  // no such enum read: Avro C refuses or skips it
    const int nw = avro_schema_enum_number_of_symbols(w), nr = avro_schema_enum_number_of_symbols(r);
    bool prefix = nw <= nr;
    for (int i = 0; prefix && i < nw; ++i)
      prefix = std::string_view(avro_schema_enum_get(w, i)) == avro_schema_enum_get(r, i);
    if (!prefix)
      return "enum " + name + ": the writer's symbols are not the first ones of the reader's, in "
             "the same order (Avro C, which reads them, maps a symbol by its position, not its "
             "name): list the writer's symbols first, in its order, in the reader schema";
  }
  return "";
}

// Avro C parses one JSON text, with no way to hand it named types defined elsewhere; but
// in a union's text a branch may use the types defined by the branches before it. So
// the referenced schemas (named types) and the schema are parsed as one union, and the
// schema is written out again with each named type defined at its first use (Avro C's
// generic classes and resolvers follow a link only back to a type they are inside) and
// parsed alone.
Schema parse_schema(std::string_view json, const std::vector<ReferencedSchema>& referenced) {
  if (referenced.empty()) return parse_schema(json);
  auto trimmed = json;
  while (!trimmed.empty() && std::isspace(static_cast<unsigned char>(trimmed.front()))) trimmed.remove_prefix(1);
  while (!trimmed.empty() && std::isspace(static_cast<unsigned char>(trimmed.back()))) trimmed.remove_suffix(1);
  const bool is_union = trimmed.size() >= 2 && trimmed.front() == '[' && trimmed.back() == ']';
  std::string text = "[";
  for (const auto& r : referenced) text += r.schema + ",";
  text += is_union ? trimmed.substr(1, trimmed.size() - 2) : trimmed;
  text += "]";
  Schema all = parse_schema(text);
  const std::size_t branches = avro_schema_union_size(all.get());
  if (!is_union && branches != referenced.size() + 1)
    throw std::runtime_error("a referenced schema is a union, not a named type");
  for (std::size_t i = 0; i < referenced.size(); ++i) {
    avro_schema_t r = avro_schema_union_branch(all.get(), static_cast<int>(i));
    if (!is_avro_named_type(r))
      throw std::runtime_error("the reference " + referenced[i].name + " is " +
                               std::string(avro_schema_type_name(r)) +
                               ", not a named type (record, enum or fixed)");
  }
  std::set<std::string> defined;
  std::string out;
  if (is_union) out += "[";
  for (std::size_t i = referenced.size(); i < branches; ++i) {
    if (i > referenced.size()) out += ",";
    write_inline_json(avro_schema_union_branch(all.get(), static_cast<int>(i)), defined, out);
  }
  if (is_union) out += "]";
  return parse_schema(out);
}

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

namespace {

using Json = nlohmann::json;

// A schema attribute's text; "" when it is absent or not a string. Avro C and Java ignore a
// `logicalType` that is null or a number, and nlohmann's value() threw on it (the
// pipeline stopped, whatever on_error said).
std::string text_of(const Json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string full_name_in(const Json& named, const std::string& space) {
  const std::string name = text_of(named, "name");
  if (name.find('.') != std::string::npos) return name;
  const std::string own = named.contains("namespace") && named["namespace"].is_string()
                              ? named["namespace"].get<std::string>() : space;
  return own.empty() ? name : own + "." + name;
}

// A long of the timestamp logical type at `unit` ("micros", "nanos"), or a union with one.
bool is_timestamp_in(const Json& type, const std::string& unit) {
  if (type.is_array())
    return std::any_of(type.begin(), type.end(), [&](const Json& t) { return is_timestamp_in(t, unit); });
  if (!type.is_object() || text_of(type, "type") != "long" || !type.contains("logicalType")) return false;
  const Json& logical = type["logicalType"];
  return logical == "timestamp-" + unit || logical == "local-timestamp-" + unit;
}

constexpr int kMostDecimalPrecision = 1000;

std::optional<SchemaNotes::Decimal> decimal_of(const Json& type) {
  if (!type.is_object() || text_of(type, "logicalType") != "decimal") return std::nullopt;
  const std::string kind = text_of(type, "type");
  if (kind != "bytes" && kind != "fixed") return std::nullopt;
  SchemaNotes::Decimal d;
  auto number = [&](const char* key, int otherwise) {
    if (!type.contains(key) || !type[key].is_number_integer()) return otherwise;
    const auto n = type[key].get<std::int64_t>();
    return n < -1 || n > kMostDecimalPrecision ? -1 : static_cast<int>(n);  // -1: invalid
  };
  d.precision = number("precision", 0);
  d.scale = number("scale", 0);
  if (d.precision <= 0 || d.scale < 0 || d.scale > d.precision) return std::nullopt;  // invalid: plain bytes, as the spec says
  // A decimal's text is padded to its scale: a schema's precision of 2*10^9 made each
  // record a 2 GB string. Past what any number type holds (Java's BigDecimal in practice,
  // PostgreSQL's numeric 1000 digits), the value stays plain bytes.
  if (d.precision > kMostDecimalPrecision) return std::nullopt;
  return d;
}

// A record field's "decimal" bytes: inline, or a branch of its union.
std::optional<SchemaNotes::Decimal> decimal_bytes_of(const Json& type) {
  if (type.is_array()) {
    for (const auto& branch : type)
      if (auto d = decimal_bytes_of(branch)) return d;
    return std::nullopt;
  }
  if (type.is_object() && text_of(type, "type") == "bytes") return decimal_of(type);
  return std::nullopt;
}

// The first type a field's type names (a union's default is of its first branch).
const Json& first_type(const Json& type) {
  if (type.is_array() && !type.empty()) return first_type(type[0]);
  if (type.is_object() && type.contains("type") && (type["type"].is_string() || type["type"].is_array()) &&
      type["type"] != "record" && type["type"] != "enum" && type["type"] != "array" && type["type"] != "map" &&
      type["type"] != "fixed" && type["type"] != "error")
    return first_type(type["type"]);
  return type;
}

// The named types a default's values are read against (a referenced schema's too).
struct NamedTypes {
  std::set<std::string>& fixed;
  std::map<std::string, std::string, std::less<>>& records;  // full name -> the record's JSON
};

// Whether a field's type takes bytes (bytes, or a fixed: inline, or named earlier).
bool is_bytes_like(const Json& type, const std::string& space, const NamedTypes& names) {
  const Json& t = first_type(type);
  if (t.is_string()) {
    const std::string name = t.get<std::string>();
    return name == "bytes" || names.fixed.count(name) > 0 ||
           (!space.empty() && names.fixed.count(space + "." + name) > 0);
  }
  return t.is_object() && (text_of(t, "type") == "bytes" || text_of(t, "type") == "fixed");
}

// The record or map schema a default object is of, and the namespace its names are in:
// inline, or a record named earlier. Null for a type that is neither.
Json object_type(const Json& type, const std::string& space, const NamedTypes& names, std::string& inner) {
  const Json& t = first_type(type);
  inner = space;
  if (t.is_string()) {
    const std::string name = t.get<std::string>();
    auto it = names.records.find(name);
    if (it == names.records.end() && !space.empty()) it = names.records.find(space + "." + name);
    if (it == names.records.end()) return Json();
    inner = it->first.rfind('.') == std::string::npos ? "" : it->first.substr(0, it->first.rfind('.'));
    return Json::parse(it->second, nullptr, false);
  }
  if (!t.is_object()) return Json();
  const std::string kind = text_of(t, "type");
  if (kind == "record" || kind == "error") {
    const std::string name = full_name_in(t, space);
    inner = name.rfind('.') == std::string::npos ? "" : name.substr(0, name.rfind('.'));
  }
  return t;
}

// A field's default as a Value the writer takes (JSON as the Avro spec gives it; bytes
// and fixed as strings of code points 0-255, at any depth: a nested record's fields and a
// map's values are read with their types).
Value default_value(const Json& json, const Json& type, const std::string& space, const NamedTypes& names) {
  if (json.is_null()) return Value();
  if (json.is_boolean()) return Value(json.get<bool>());
  if (json.is_number_integer()) return Value(json.get<std::int64_t>());
  if (json.is_number()) return Value(json.get<double>());
  if (json.is_string()) {
    const std::string text = json.get<std::string>();
    if (!is_bytes_like(type, space, names)) return Value(text);
    Bytes bytes;
    for (std::size_t i = 0; i < text.size();) {  // UTF-8 code points below 256, one byte each
      const auto c = static_cast<unsigned char>(text[i]);
      if (c < 0x80) bytes.data.push_back(static_cast<char>(c)), i += 1;
      else if (i + 1 < text.size()) bytes.data.push_back(static_cast<char>(((c & 0x1f) << 6) | (text[i + 1] & 0x3f))), i += 2;
      else break;
    }
    return Value(std::move(bytes));
  }
  if (json.is_array()) {
    const Json& t = first_type(type);
    const Json items = t.is_object() && t.contains("items") ? t["items"] : Json();
    List list;
    for (const auto& item : json) list.push_back(default_value(item, items, space, names));
    return Value(std::move(list));
  }
  std::string inner;
  const Json object = object_type(type, space, names, inner);
  auto type_of = [&](const std::string& key) -> Json {
    if (!object.is_object()) return Json();
    if (object.contains("values")) return object["values"];
    if (!object.contains("fields") || !object["fields"].is_array()) return Json();
    for (const auto& field : object["fields"])
      if (field.is_object() && text_of(field, "name") == key && field.contains("type")) return field["type"];
    return Json();
  };
  std::vector<std::string> keys;
  List fields;
  for (const auto& [key, item] : json.items()) {
    keys.push_back(key);
    fields.push_back(default_value(item, type_of(key), inner, names));
  }
  return Value(Struct{StructSchema::make(std::move(keys)), std::move(fields)});
}

// Walks a schema's JSON in definition order (a named type is defined before it is used).
void read_notes(const Json& type, const std::string& space, SchemaNotes& notes, const NamedTypes& names) {
  if (type.is_array()) {
    for (const auto& branch : type) read_notes(branch, space, notes, names);
    return;
  }
  if (!type.is_object()) return;
  const std::string kind = text_of(type, "type");
  if (kind == "record" || kind == "error") {
    const std::string name = full_name_in(type, space);
    const std::string inner = name.rfind('.') == std::string::npos ? "" : name.substr(0, name.rfind('.'));
    if (!type.contains("fields") || !type["fields"].is_array()) return;
    names.records.insert_or_assign(name, type.dump());
    for (const auto& field : type["fields"]) {
      if (!field.is_object() || !field.contains("type")) continue;
      read_notes(field["type"], inner, notes, names);
      if (is_timestamp_in(field["type"], "millis")) notes.millis_fields.emplace(name, text_of(field, "name"));
      if (is_timestamp_in(field["type"], "micros")) notes.micros_fields.emplace(name, text_of(field, "name"));
      if (is_timestamp_in(field["type"], "nanos")) notes.nanos_fields.emplace(name, text_of(field, "name"));
      if (auto d = decimal_bytes_of(field["type"])) notes.decimal_fields.insert_or_assign({name, text_of(field, "name")}, *d);
      if (field.contains("default"))
        notes.defaults.insert_or_assign(std::make_pair(name, text_of(field, "name")),
                                        default_value(field["default"], field["type"], inner, names));
    }
  } else if (kind == "fixed") {
    names.fixed.insert(full_name_in(type, space));
    if (auto d = decimal_of(type)) notes.decimal_fixed.insert_or_assign(full_name_in(type, space), *d);
  } else if (kind == "array" && type.contains("items")) {
    read_notes(type["items"], space, notes, names);
  } else if (kind == "map" && type.contains("values")) {
    read_notes(type["values"], space, notes, names);
  } else if (type["type"].is_object() || type["type"].is_array()) {
    read_notes(type["type"], space, notes, names);
  }
}

}  // namespace

void SchemaNotes::read(std::string_view schema_json) {
  const Json parsed = Json::parse(schema_json.begin(), schema_json.end(), nullptr, false);
  if (!parsed.is_discarded()) read_notes(parsed, "", *this, NamedTypes{fixed_names, record_texts});
}

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
        // A finite number past a float's range would be written as an infinity.
        if (std::isfinite(d) && std::fabs(d) > std::numeric_limits<float>::max())
          refuse(where, in, "a number within a float's range (about ±3.4e38)");
        const float f = static_cast<float>(d);
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
