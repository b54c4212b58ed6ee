// Avro schemas: parsed with Avro C (references included), written back as JSON text.
#include "avro_value.hpp"

#include <cctype>
#include <map>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

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

std::string full_name(avro_schema_t named) {
  const char* space = avro_schema_namespace(named);
  return space && *space ? std::string(space) + "." + avro_schema_name(named) : avro_schema_name(named);
}

namespace {

// The schema as JSON text, each named type defined where it is first used (names,
// symbols and field names are Avro identifiers: nothing to escape). What Avro C does not
// keep (defaults, logical types, docs) is not written; Avro C reads none of it.
using FieldSet = std::set<std::pair<std::string, std::string>>;

void write_inline_json(avro_schema_t s, std::set<std::string>& defined, std::string& out,
                       const FieldSet* skip = nullptr) {
  if (is_avro_link(s)) s = avro_schema_link_target(s);
  if (is_avro_named_type(s) && !defined.insert(full_name(s)).second) {
    out += "\"" + full_name(s) + "\"";
    return;
  }
  switch (avro_typeof(s)) {
    case AVRO_RECORD: {
      const std::string name = full_name(s);
      out += "{\"type\":\"record\",\"name\":\"" + name + "\",\"fields\":[";
      const auto n = avro_schema_record_size(s);
      bool first = true;
      for (std::size_t i = 0; i < n; ++i) {
        const char* field = avro_schema_record_field_name(s, static_cast<int>(i));
        if (skip && skip->count({name, field})) continue;
        out += std::string(first ? "" : ",") + "{\"name\":\"" + field + "\",\"type\":";
        first = false;
        write_inline_json(avro_schema_record_field_get_by_index(s, static_cast<int>(i)), defined, out, skip);
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
      write_inline_json(avro_schema_array_items(s), defined, out, skip);
      out += "}";
      return;
    case AVRO_MAP:
      out += "{\"type\":\"map\",\"values\":";
      write_inline_json(avro_schema_map_values(s), defined, out, skip);
      out += "}";
      return;
    case AVRO_UNION: {
      out += "[";
      const auto n = avro_schema_union_size(s);
      for (std::size_t i = 0; i < n; ++i) {
        if (i) out += ",";
        write_inline_json(avro_schema_union_branch(s, static_cast<int>(i)), defined, out, skip);
      }
      out += "]";
      return;
    }
    default:  // a primitive
      out += "\"" + std::string(avro_schema_type_name(s)) + "\"";
  }
}

// Calls `visit` on every schema `s` reaches, each named type once.
template <class Visit>
void walk(avro_schema_t s, std::set<std::string>& seen, const Visit& visit) {
  if (is_avro_link(s)) s = avro_schema_link_target(s);
  if (is_avro_named_type(s) && !seen.insert(full_name(s)).second) return;
  visit(s);
  switch (avro_typeof(s)) {
    case AVRO_RECORD:
      for (std::size_t i = 0; i < avro_schema_record_size(s); ++i)
        walk(avro_schema_record_field_get_by_index(s, static_cast<int>(i)), seen, visit);
      return;
    case AVRO_ARRAY:
      return walk(avro_schema_array_items(s), seen, visit);
    case AVRO_MAP:
      return walk(avro_schema_map_values(s), seen, visit);
    case AVRO_UNION:
      for (std::size_t i = 0; i < avro_schema_union_size(s); ++i)
        walk(avro_schema_union_branch(s, static_cast<int>(i)), seen, visit);
      return;
    default:
      return;
  }
}

// Every named type of `type` (AVRO_RECORD, AVRO_ENUM) a schema reaches, by full name.
std::map<std::string, avro_schema_t> named_of(avro_schema_t schema, avro_type_t type) {
  std::map<std::string, avro_schema_t> out;
  std::set<std::string> seen;
  walk(schema, seen, [&](avro_schema_t s) {
    if (avro_typeof(s) == type) out[full_name(s)] = s;
  });
  return out;
}

}  // namespace

std::string enums_read_by_position(avro_schema_t writer, avro_schema_t reader) {
  const std::map<std::string, avro_schema_t> written = named_of(writer, AVRO_ENUM), read = named_of(reader, AVRO_ENUM);
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

std::map<std::string, avro_schema_t> records_of(avro_schema_t schema) { return named_of(schema, AVRO_RECORD); }

std::set<std::pair<std::string, std::string>> fields_only_read(avro_schema_t writer, avro_schema_t reader,
                                                               const SchemaNotes& reader_notes) {
  const std::map<std::string, avro_schema_t> written = records_of(writer), read = records_of(reader);
  std::map<std::string, avro_schema_t> written_short;  // the spec matches records by unqualified name too
  for (const auto& [name, w] : written) written_short[avro_schema_name(w)] = w;
  FieldSet out;
  for (const auto& [name, r] : read) {
    avro_schema_t w = nullptr;
    if (auto full = written.find(name); full != written.end()) w = full->second;
    else if (auto bare = written_short.find(avro_schema_name(r)); bare != written_short.end()) w = bare->second;
    if (!w) continue;  // Avro C says what it makes of that
    for (std::size_t i = 0; i < avro_schema_record_size(r); ++i) {
      const char* field = avro_schema_record_field_name(r, static_cast<int>(i));
      if (avro_schema_record_field_get_index(w, field) < 0 &&
          reader_notes.defaults.count(std::make_pair(name, std::string(field))))
        out.emplace(name, field);
    }
  }
  return out;
}

Schema without_fields(avro_schema_t schema, const std::set<std::pair<std::string, std::string>>& fields) {
  std::set<std::string> defined;
  std::string out;
  write_inline_json(schema, defined, out, &fields);
  return parse_schema(out);
}

}  // namespace pipehost::avro
