// What a schema's JSON says that Avro C does not keep: logical types, decimals, defaults.
#include "avro_value.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

namespace pipehost::avro {

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
}  // namespace pipehost::avro
