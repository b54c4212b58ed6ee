#include "json_decode.hpp"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <set>

#include <pipehost/utf8.hpp>

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

// A key in a rejection's reason: the start of it (a dead letter carries the reason).
std::string shown(std::string_view key) { return utf8::abbreviated(key, 60); }

// Whether an object repeats a key, in O(n log n) of its keys at worst: a scan while it
// has few, an ordered set beyond (a scan of every earlier key made a 1 MiB object of
// short keys take seconds to decode). Not a hash set: std::hash of a string is unseeded
// MurmurHash, so a sender could pick keys that all collide and make it quadratic again.
// The views point into simdjson's buffer for the current document.
class KeySet {
 public:
  void clear() {
    few_.clear();
    many_.clear();
  }
  bool insert(std::string_view key) {  // false: already there
    if (!many_.empty()) return many_.insert(key).second;
    if (std::find(few_.begin(), few_.end(), key) != few_.end()) return false;
    few_.push_back(key);
    if (few_.size() > kFew) many_.insert(few_.begin(), few_.end());
    return true;
  }

 private:
  static constexpr std::size_t kFew = 16;
  std::vector<std::string_view> few_;
  std::set<std::string_view> many_;
};

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
  // Shapes by their keys in order, found by the record's keys as read (string_views into
  // the input): a record of a known shape allocates no names to find it.
  struct ShapeLess {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
        return std::string_view(x) < std::string_view(y);
      });
    }
  };
  std::map<std::vector<std::string>, std::shared_ptr<const StructSchema>, ShapeLess> schemas;
  // The top-level object: the last record's shape, and this record's keys so far.
  std::shared_ptr<const StructSchema> last_shape;
  std::vector<std::string_view> keys;
  KeySet seen;

  std::size_t schemas_bytes = 0;

  std::shared_ptr<const StructSchema> schema_of(const std::vector<std::string_view>& keys) {
    auto it = schemas.find(keys);
    if (it != schemas.end()) return it->second;
    std::vector<std::string> names(keys.begin(), keys.end());
    std::size_t bytes = 0;
    for (const auto& n : names) bytes += n.size() + sizeof(std::string);
    // Many shapes, or a few big ones (each kept twice): do not grow without bound.
    if (schemas.size() > 4096 || schemas_bytes + bytes > kMostSchemaBytes) {
      schemas.clear();
      schemas_bytes = 0;
    }
    auto made = StructSchema::make(names);
    schemas.emplace(names, made);
    schemas_bytes += 2 * bytes;
    return made;
  }
  static constexpr std::size_t kMostSchemaBytes = 16 << 20;

  bool wanted(std::string_view key, int depth) const {
    if (depth > 0 || projection.empty()) return true;
    return std::find(projection.begin(), projection.end(), key) != projection.end();
  }

  static std::string_view key_of(od::field& field) {
    std::string_view key;
    check(field.unescaped_key().get(key), "a key");
    return key;
  }

  // A nested object, built anew.
  Value object(od::object obj, int depth) {
    std::vector<std::string_view> names;
    std::vector<Value> values;
    KeySet nested_seen;
    for (auto field_or_error : obj) {
      od::field field;
      check(std::move(field_or_error).get(field), "a key");
      const std::string_view key = key_of(field);
      if (!nested_seen.insert(key)) throw Reject{"duplicate key '" + shown(key) + "'"};
      names.push_back(key);
      values.push_back(value(field.value(), depth + 1));
    }
    return Struct{schema_of(names), std::move(values)};
  }

  // The top-level object, written over `out`'s fields in place: a recycled record's
  // strings keep their storage (Record::value_to_overwrite), and a record of the last
  // record's shape takes its schema without building its names.
  void top_object(od::object obj, Value& out) {
    Struct* s = out.as<Struct>();
    if (!s) {
      out = Struct{};
      s = out.as<Struct>();
    }
    std::vector<Value>& fields = s->fields;
    const std::vector<std::string>* last_names = last_shape ? &last_shape->names() : nullptr;
    bool same = last_names != nullptr;  // every key so far as in the last shape (all distinct)
    keys.clear();
    seen.clear();
    for (auto field_or_error : obj) {
      od::field field;
      check(std::move(field_or_error).get(field), "a key");
      const std::string_view key = key_of(field);
      if (!wanted(key, 0)) continue;  // skipped by On-Demand without building it
      const std::size_t n = keys.size();
      if (same && (n >= last_names->size() || (*last_names)[n] != key)) {
        same = false;
        for (std::string_view k : keys) seen.insert(k);
      }
      if (!same && !seen.insert(key)) throw Reject{"duplicate key '" + shown(key) + "'"};
      keys.push_back(key);
      if (n == fields.size()) fields.emplace_back();
      value_into(field.value(), 1, fields[n]);
    }
    fields.resize(keys.size());
    if (!same || keys.size() != last_names->size()) last_shape = schema_of(keys);
    if (s->schema != last_shape) s->schema = last_shape;
  }

  // A value into a slot that may hold an earlier record's: scalars and strings in place.
  void value_into(od::value v, int depth, Value& slot) {
    od::json_type type{};
    check(v.type().get(type), "a value");
    switch (type) {
      case od::json_type::string: {
        std::string_view text;
        check(v.get_string().get(text), "a string");
        slot.assign_string(text);
        return;
      }
      case od::json_type::boolean: {
        bool b = false;
        check(v.get_bool().get(b), "a boolean");
        slot.set(b);
        return;
      }
      case od::json_type::number: {
        od::number_type kind{};
        check(v.get_number_type().get(kind), "a number");
        if (kind == od::number_type::signed_integer) {
          std::int64_t i = 0;
          const auto e = v.get_int64().get(i);
          // simdjson calls every negative integer signed: one past int64 is of another type.
          if (e == simdjson::INCORRECT_TYPE) throw Reject{"an integer below -2^63"};
          check(e, "an integer");
          slot.set(i);
          return;
        }
        if (kind == od::number_type::unsigned_integer) throw Reject{"an integer above 2^63-1"};
        double d = 0;
        // The token runs up to the next structural character: without the whitespace
        // before it, so pretty-printed numbers are not all taken for long ones below.
        std::string_view raw = v.raw_json_token();
        raw = raw.substr(0, raw.find_last_not_of(" \t\r\n") + 1);
        // simdjson says the same of 1e400 as of 1.e5: name both.
        const auto e = v.get_double().get(d);
        if (e == simdjson::NUMBER_ERROR)
          throw Reject{"a number that is not valid JSON or is beyond a double's range"};
        check(e, "a number");
        // simdjson 3.0.1 (Debian's) misreads a number below 1 with more than 19 significant
        // digits (0.33333333333333333333 gave 0.1488...): a long one is read again by
        // from_chars, which rounds correctly. Short ones (nearly all) keep simdjson's.
        if (raw.size() > 20) {
          double again = 0;
          const auto read = std::from_chars(raw.data(), raw.data() + raw.size(), again);
          if (read.ec == std::errc{}) {
            d = again;
          } else if (read.ec == std::errc::result_out_of_range) {
            // Past a double: too small (0.000...1e-400) is 0, as simdjson reads 1e-400;
            // too large is refused, as simdjson refuses 1e400.
            const auto e = raw.find_first_of("eE");
            const bool tiny = e != std::string_view::npos && e + 1 < raw.size() && raw[e + 1] == '-' &&
                              (raw.starts_with("0") || raw.starts_with("-0"));
            if (!tiny) throw Reject{"a number that is not valid JSON or is beyond a double's range"};
            d = raw.starts_with("-") ? -0.0 : 0.0;
          }
        }
        slot.set(d);
        return;
      }
      default:
        slot = value(v, depth);
    }
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
      case od::json_type::null: {
        // The type is told by the first character: "nul" or "nullx" is not null.
        bool is_null = false;
        if (v.is_null().get(is_null) || !is_null) throw Reject{"not valid JSON: a literal that is not null"};
        return Value();
      }
      default: {
        Value scalar;
        value_into(v, depth, scalar);
        return scalar;
      }
    }
  }

  // Into `out`, which may hold an earlier record's struct; on failure it is left null
  // rather than half written.
  void decode(std::string_view payload, Value& out) {
    try {
      decode_object(payload, out);
    } catch (const Reject& e) {
      out = Value();
      // simdjson says "ended early in the middle of an object" both for an object cut
      // short and for one followed by more text ("{...} xyz"): say what it can be.
      if (e.reason.find("INCOMPLETE_ARRAY_OR_OBJECT") != std::string::npos ||
          e.reason.find("ended early") != std::string::npos) {
        const auto last = payload.find_last_not_of(" \t\r\n");
        if (last != std::string_view::npos && payload[last] != '}')
          throw Reject{"not valid JSON: the object does not end with '}' (cut short, or text after it)"};
      }
      throw;
    } catch (...) {
      out = Value();
      throw;
    }
  }

  void decode_object(std::string_view payload, Value& out) {
    // A UTF-8 byte-order mark, which RFC 8259 lets a parser ignore (some Windows tools
    // write one): simdjson refuses it as a misplaced comma.
    if (payload.starts_with("\xEF\xBB\xBF")) payload.remove_prefix(3);
    {
      padded.assign(payload.data(), payload.size());
      padded.reserve(payload.size() + simdjson::SIMDJSON_PADDING);
      od::document doc;
      check(parser.iterate(padded.data(), payload.size(), padded.capacity()).get(doc), "the document");
      od::json_type type{};
      check(doc.type().get(type), "the document");
      if (type != od::json_type::object) throw Reject{"not a JSON object"};
      od::object obj;
      check(doc.get_object().get(obj), "the top-level object");
      top_object(obj, out);
      // At the end, the document has no current location; anything else is left over.
      if (!doc.current_location().error()) throw Reject{"text after the JSON object"};
    }
  }
};

void JsonDecodeConfig::declare(OptionList<JsonDecodeConfig>& o) {
  o.add("fields", &JsonDecodeConfig::fields,
        "top-level fields to keep, the others are skipped unparsed (empty: all); a skipped "
        "field's value is not checked, so a syntax error inside one is not seen");
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
    if (r.payload.is_null()) {
      batch.reject(i, "json_decode: " "null value (a tombstone): there is nothing to decode");
      continue;
    }
    if (r.payload.size() > parser_->max_bytes) {
      batch.reject(i, "json_decode: the payload of " + std::to_string(r.payload.size()) +
                          " bytes is larger than max_record_bytes");
      continue;
    }
    try {
      parser_->decode(r.payload.view(), r.value_to_overwrite());
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
