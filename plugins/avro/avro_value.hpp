// Small RAII wrappers over Avro C (Debian's libavro-dev; there is no Avro C++ in Debian)
// and the conversions between Avro values and the SDK's Value. Records become Structs
// (one StructSchema per Avro record schema), arrays Lists, maps Structs keyed by the map
// keys, unions their branch, enums their symbol, bytes and fixed Bytes, longs and ints
// integers: `"logicalType"` written beside a field's type is not part of the type in
// Avro, so such timestamps stay plain longs of epoch milliseconds.
#pragma once
#include <avro.h>

#include <map>
#include <set>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <pipehost/context.hpp>
#include <pipehost/schema_references.hpp>
#include <pipehost/value.hpp>

namespace pipehost::avro {

struct SchemaDeleter {
  void operator()(avro_schema_t s) const { avro_schema_decref(s); }
};
using Schema = std::unique_ptr<std::remove_pointer_t<avro_schema_t>, SchemaDeleter>;

struct IfaceDeleter {
  void operator()(avro_value_iface_t* i) const { avro_value_iface_decref(i); }
};
using Iface = std::unique_ptr<avro_value_iface_t, IfaceDeleter>;

// One Avro value of a class, owned.
class OwnedValue {
 public:
  explicit OwnedValue(avro_value_iface_t* iface);
  explicit OwnedValue(avro_value_t adopted) : value_(adopted) {}
  ~OwnedValue() { avro_value_decref(&value_); }
  OwnedValue(const OwnedValue&) = delete;
  OwnedValue& operator=(const OwnedValue&) = delete;
  avro_value_t& get() { return value_; }

 private:
  avro_value_t value_{};
};

// Throws std::runtime_error with Avro's message.
Schema parse_schema(std::string_view json);
// A schema that uses named types defined in others (a registry schema's references, in
// collect_references' order: those a type uses before it).
Schema parse_schema(std::string_view json, const std::vector<ReferencedSchema>& referenced);
// The last error Avro C reported, for messages.
std::string avro_error();
// A named schema's full name: its namespace, a dot, its name (the name alone without one).
std::string full_name(avro_schema_t named);
// Why a writer's enums cannot be read with a reader schema's ("" when they can). Avro C's
// resolver keeps a symbol's position, not its name: it reads a symbol as another (the
// reader's symbols in another order) or past the reader's symbols (a crash). Only a
// reader whose enum begins with the writer's symbols, in order, reads them right.
std::string enums_read_by_position(avro_schema_t writer, avro_schema_t reader);

// Every record a schema reaches, by full name.
std::map<std::string, avro_schema_t> records_of(avro_schema_t schema);

struct SchemaNotes;
// The fields of the reader's records, as (record full name, field), that the writer's
// record of that name lacks and that the reader gives a default: Avro C 1.11's
// resolution refuses them, so they are read without (without_fields) and filled after.
std::set<std::pair<std::string, std::string>> fields_only_read(avro_schema_t writer, avro_schema_t reader,
                                                               const SchemaNotes& reader_notes);
// `schema` with those fields left out of its records.
Schema without_fields(avro_schema_t schema, const std::set<std::pair<std::string, std::string>>& fields);

// Avro value -> Value. Record schemas' StructSchemas are kept in `schemas`.
class ToValue {
 public:
  // Writes the value into `out` in place: strings, lists and structs it already holds
  // keep their storage (for Record::value_to_overwrite); a map is built anew. On a throw
  // `out` is left half written: the caller resets it.
  void into(avro_value_t& v, Value& out);

  // The logical types of the schema values are read as (what Avro C drops from its
  // text: see SchemaNotes), set before each value; null: none. A record field of
  // timestamp-millis or -micros becomes a Timestamp, a decimal (bytes, or a fixed) its
  // exact decimal text; other logical types keep their underlying value.
  void use_notes(const SchemaNotes* notes) { notes_ = notes; }
  // The writer schemas these were read under are gone: their record shapes go too.
  void forget_records() { records_.clear(); }

  enum class Logical : std::uint8_t { none, millis, micros, decimal };
  struct RecordShape {
    std::shared_ptr<const StructSchema> schema;
    std::vector<Logical> logical;  // per field; empty when no field has one
    std::vector<int> scale;        // a decimal field's scale
    std::vector<int> branch;       // a union field's branch of the logical type; -1: not a union
  };
  // An Avro record schema's StructSchema and its fields' logical types (under the notes
  // in use when first asked: each writer's schema is parsed apart), kept.
  const RecordShape& record_shape(avro_schema_t s);
  std::shared_ptr<const StructSchema> record_schema(avro_schema_t s) { return record_shape(s).schema; }
  // A record field's value as read (a long, or bytes), made its logical type's. Throws
  // InvalidRecord for a timestamp out of range.
  // `branch`: the union branch the value was read from (-1: the field is no union).
  static void apply_logical(const RecordShape& shape, std::size_t field, Value& v, int branch);
  // The StructSchema of a map with these keys (kept).
  std::shared_ptr<const StructSchema> map_schema(const std::vector<std::string>& keys);

 private:
  const SchemaNotes* notes_ = nullptr;
  // Each record schema is held (a reference) so its address cannot be reused by another.
  std::map<avro_schema_t, std::pair<Schema, RecordShape>> records_;
  std::map<std::vector<std::string>, std::shared_ptr<const StructSchema>> maps_;
  std::size_t maps_bytes_ = 0;
  static constexpr std::size_t kMostMapKeyBytes = 16 << 20;
};

// Value -> Avro binary of a schema; throws InvalidRecord naming the field that does not
// fit. Written straight, not through Avro C's value and avro_value_write: with them (and
// a path string per field) seed 004's output events cost 5,375 instructions per record
// to encode, now 1,615 (callgrind, bench/NOTES.md). The bytes are Avro C's, tested
// against it. Which struct field feeds
// which Avro field is worked out once per pair of schemas, and a field's path is spelled
// only for an error.
// What Avro C drops from a schema's JSON text, read from it (and from the texts of the
// schemas it references): logical types (a timestamp written into a record field of
// "timestamp-micros" or "local-timestamp-micros" is written in microseconds, not
// milliseconds; a number or decimal text written into a "decimal" is its unscaled
// two's-complement integer) and fields' defaults (a field the value lacks is written with its
// default, as fastavro and Confluent's AvroSerializer do, so a subject evolved with a
// defaulted field still takes the records). By (full record name, field name), per
// schema: each subject of an encoder has its own. Text that is not JSON adds nothing.
struct SchemaNotes {
  struct Decimal {
    int precision = 0;
    int scale = 0;
  };
  std::set<std::pair<std::string, std::string>, std::less<>> millis_fields;  // read as Timestamps
  std::set<std::pair<std::string, std::string>, std::less<>> micros_fields;
  std::set<std::pair<std::string, std::string>, std::less<>> nanos_fields;  // timestamp-nanos (Avro 1.12)
  // "decimal" bytes of record fields, and named fixed types that are decimals.
  std::map<std::pair<std::string, std::string>, Decimal, std::less<>> decimal_fields;
  std::map<std::string, Decimal, std::less<>> decimal_fixed;
  std::map<std::pair<std::string, std::string>, Value, std::less<>> defaults;
  std::set<std::string> fixed_names;  // named fixed types seen: a referenced schema's too
  // Named records seen (their JSON text): a default of a record or a map of records holds
  // bytes of fields typed by name.
  std::map<std::string, std::string, std::less<>> record_texts;
  void read(std::string_view schema_json);  // read the referenced schemas first
};

class FromValue {
 public:

  // Appends the value's Avro binary to `out`; `notes` are what Avro C dropped from that
  // schema's text (see SchemaNotes).
  void binary(const Value& in, avro_schema_t schema, std::string& out, const SchemaNotes& notes) {
    notes_ = &notes;
    // Shapes made per record must not pile up; cleared only here, between values, as a
    // write holds a reference to its record's order while it writes the fields.
    if (orders_.size() > 64) {
      orders_.clear();
      last_ = nullptr;
    }
    refusals_left_ = kMostRefusals;
    write_binary(in, schema, out, nullptr);
  }

 private:
  struct Path;
  struct Order {
    std::shared_ptr<const StructSchema> from;  // held: its address cannot be reused
    std::vector<int> field_of;  // Avro field i <- struct field field_of[i], -1: none (null)
  };
  using OrderKey = std::pair<avro_schema_t, const StructSchema*>;
  struct OrderHash {
    std::size_t operator()(const OrderKey& k) const {
      return std::hash<const void*>()(k.first) * 31 + std::hash<const void*>()(k.second);
    }
  };
  void write_binary(const Value& in, avro_schema_t schema, std::string& out, const Path* where);
  void write_union(const Value& in, avro_schema_t schema, std::string& out, const Path* where);
  const std::vector<int>& order(avro_schema_t record, const Struct& from);
  [[noreturn]] static void refuse(const Path* where, const Value& got, const char* wanted);
  // One per record schema and input shape (few; a value of many shapes, e.g. JSON objects
  // of varying keys, many): found by hash, and its elements stay where they are as it grows.
  std::unordered_map<OrderKey, Order, OrderHash> orders_;
  const Order* last_ = nullptr;
  OrderKey last_key_{};
  static constexpr int kMostRefusals = 256;  // union branches tried in vain, per value
  int refusals_left_ = kMostRefusals;
  const SchemaNotes* notes_ = nullptr;  // the schema being written's
  bool in_micros(const Path* where) const { return in_fields(notes_ ? &notes_->micros_fields : nullptr, where); }
  bool in_nanos(const Path* where) const { return in_fields(notes_ ? &notes_->nanos_fields : nullptr, where); }
  bool in_fields(const std::set<std::pair<std::string, std::string>, std::less<>>* fields, const Path* where) const;
  const SchemaNotes::Decimal* decimal_at(avro_schema_t schema, const Path* where) const;
  const Value* default_of(avro_schema_t record, std::size_t field) const;
};

}  // namespace pipehost::avro
