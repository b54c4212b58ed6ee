#include "json_decode.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <limits>

namespace pipehost::json {
namespace {

namespace od = simdjson::ondemand;

struct Reject {
  std::string reason;
};

// simdjson reads lazily: a syntax error shows where the value is used, as a type or
// structure error; all of them mean the payload is not valid JSON.
void check(simdjson::error_code e, const char* reading) {
  if (e) throw Reject{std::string("not valid JSON (reading ") + reading + "): " + simdjson::error_message(e)};
}

}  // namespace

// The parser, a padded copy of the payload (simdjson reads past the end) and the field
// name lists seen, so records of one shape share one StructSchema.
struct JsonDecode::Parser {
  Parser(std::size_t max_bytes, int max_depth, std::vector<std::string> projection)
      : parser(max_bytes), max_bytes(max_bytes), max_depth(max_depth),
        projection(std::move(projection)) {}

  od::parser parser;
  std::size_t max_bytes;
  int max_depth;
  std::vector<std::string> projection;
  std::string padded;
  std::map<std::vector<std::string>, std::shared_ptr<const StructSchema>> schemas;

  std::shared_ptr<const StructSchema> schema_of(std::vector<std::string>& names) {
    auto it = schemas.find(names);
    if (it != schemas.end()) return it->second;
    if (schemas.size() > 4096) schemas.clear();  // many shapes: do not grow without bound
    auto made = StructSchema::make(names);
    schemas.emplace(names, made);
    return made;
  }

  bool wanted(std::string_view key, int depth) const {
    if (depth > 0 || projection.empty()) return true;
    return std::find(projection.begin(), projection.end(), key) != projection.end();
  }

  Value object(od::object obj, int depth) {
    std::vector<std::string> names;
    std::vector<Value> values;
    for (auto field : obj) {
      std::string_view key;
      check(field.unescaped_key().get(key), "a key");
      if (!wanted(key, depth)) continue;  // skipped by On-Demand without building it
      if (std::find(names.begin(), names.end(), key) != names.end())
        throw Reject{"duplicate key '" + std::string(key) + "'"};
      names.emplace_back(key);
      od::value v;
      check(field.value().get(v), "a value");
      values.push_back(value(v, depth + 1));
    }
    return Struct{schema_of(names), std::move(values)};
  }

  Value value(od::value v, int depth) {
    if (depth > max_depth) throw Reject{"nested deeper than max_depth"};
    od::json_type type{};
    check(v.type().get(type), "a value");
    switch (type) {
      case od::json_type::object: {
        od::object obj;
        check(v.get_object().get(obj), "an object");
        return object(obj, depth);
      }
      case od::json_type::array: {
        od::array arr;
        check(v.get_array().get(arr), "an array");
        List list;
        for (auto item : arr) {
          od::value element;
          check(item.get(element), "an array element");
          list.push_back(value(element, depth + 1));
        }
        return list;
      }
      case od::json_type::string: {
        std::string_view s;
        check(v.get_string().get(s), "a string");
        return std::string(s);
      }
      case od::json_type::boolean: {
        bool b = false;
        check(v.get_bool().get(b), "a boolean");
        return b;
      }
      case od::json_type::null:
        return Value();
      case od::json_type::number: {
        od::number_type kind{};
        check(v.get_number_type().get(kind), "a number");
        if (kind == od::number_type::signed_integer) {
          std::int64_t i = 0;
          check(v.get_int64().get(i), "an integer");
          return i;
        }
        if (kind == od::number_type::unsigned_integer)
          throw Reject{"an integer above 2^63-1"};
        double d = 0;
        check(v.get_double().get(d), "a number");
        return d;
      }
    }
    throw Reject{"an unknown JSON type"};
  }

  void decode(std::string_view payload, Value& out) {
    padded.assign(payload.data(), payload.size());
    padded.reserve(payload.size() + simdjson::SIMDJSON_PADDING);
    od::document doc;
    check(parser.iterate(padded.data(), payload.size(), padded.capacity()).get(doc), "the document");
    od::json_type type{};
    check(doc.type().get(type), "the document");
    if (type != od::json_type::object) throw Reject{"not a JSON object"};
    od::object obj;
    check(doc.get_object().get(obj), "the top-level object");
    out = object(obj, 0);
    // At the end, the document has no current location; anything else is left over.
    if (!doc.current_location().error()) throw Reject{"text after the JSON object"};
  }
};

void JsonDecodeConfig::declare(OptionList<JsonDecodeConfig>& o) {
  o.add("fields", &JsonDecodeConfig::fields,
        "top-level fields to keep, the others are skipped unparsed (empty: all)");
  o.add("max_record_bytes", &JsonDecodeConfig::max_record_bytes,
        "a larger payload is rejected (dead letter) instead of decoded")
      .range(1, 1 << 30);
  o.add("max_depth", &JsonDecodeConfig::max_depth, "deeper nesting is rejected").range(1, 1024);
}

JsonDecode::JsonDecode(const Config& config, Context& context)
    : parser_(std::make_unique<Parser>(static_cast<std::size_t>(config.max_record_bytes),
                                       config.max_depth, config.fields)),
      decoded_(context.counter("records_out")) {}

JsonDecode::~JsonDecode() = default;

void JsonDecode::process(Batch& batch) {
  std::uint64_t decoded = 0;
  for (std::size_t i = 0; i < batch.records.size(); ++i) {
    Record& r = batch.records[i];
    if (r.payload.size() > parser_->max_bytes) {
      batch.reject(i, "json_decode: the payload of " + std::to_string(r.payload.size()) +
                          " bytes is larger than max_record_bytes");
      continue;
    }
    try {
      parser_->decode(r.payload.view(), r.value);
      ++decoded;
    } catch (const Reject& e) {
      batch.reject(i, "json_decode: " + e.reason);
    } catch (const simdjson::simdjson_error& e) {
      batch.reject(i, std::string("json_decode: not valid JSON: ") + e.what());
    }
  }
  decoded_.add(decoded);
}

}  // namespace pipehost::json
