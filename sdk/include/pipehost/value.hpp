// The neutral decoded value: what decoders (protobuf, Avro, JSON) fill and sinks read
// by field name, so a sink works the same behind any format.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace pipehost {

struct Bytes {
  std::string data;
  bool operator==(const Bytes&) const = default;
};

struct Timestamp {
  std::int64_t micros_since_epoch = 0;  // UTC
  bool operator==(const Timestamp&) const = default;
};

// Field names of a struct, shared by every value of the same shape: a decoder builds
// one per schema, and a reader can cache a field's index per schema pointer. The type
// name says what a decoder read the struct as: a record's or message's full name, kMap
// for a map (an Avro map), empty when unknown (a JSON object). An encoder writing a
// union picks the branch of that name.
class StructSchema {
 public:
  static constexpr std::string_view kMap = "<map>";  // no Avro or protobuf type is named so
  explicit StructSchema(std::vector<std::string> names, std::string type_name = {})
      : names_(std::move(names)), type_name_(std::move(type_name)) {}
  static std::shared_ptr<const StructSchema> make(std::vector<std::string> names, std::string type_name = {}) {
    return std::make_shared<const StructSchema>(std::move(names), std::move(type_name));
  }
  const std::vector<std::string>& names() const { return names_; }
  const std::string& type_name() const { return type_name_; }
  std::optional<std::size_t> index_of(std::string_view name) const {
    for (std::size_t i = 0; i < names_.size(); ++i)
      if (names_[i] == name) return i;
    return std::nullopt;
  }

 private:
  std::vector<std::string> names_;
  std::string type_name_;
};

class Value;
using List = std::vector<Value>;

struct Struct {
  std::shared_ptr<const StructSchema> schema;
  std::vector<Value> fields;  // fields[i] is named schema->names()[i]
  const Value* get(std::string_view name) const;
  Value* get(std::string_view name);
};

class Value {
 public:
  using Variant = std::variant<std::monostate, bool, std::int64_t, double, std::string, Bytes,
                               Timestamp, List, Struct>;
  Value() = default;
  Value(bool b) : v_(b) {}
  Value(std::int64_t i) : v_(i) {}
  Value(int i) : v_(std::int64_t{i}) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(Bytes b) : v_(std::move(b)) {}
  Value(Timestamp t) : v_(t) {}
  Value(List l) : v_(std::move(l)) {}
  Value(Struct s) : v_(std::move(s)) {}

  bool is_null() const { return std::holds_alternative<std::monostate>(v_); }
  template <class T>
  bool is() const { return std::holds_alternative<T>(v_); }
  template <class T>
  const T* as() const { return std::get_if<T>(&v_); }
  template <class T>
  T* as() { return std::get_if<T>(&v_); }
  const Variant& variant() const { return v_; }
  Variant& variant() { return v_; }

  // A field of a struct value, or nullptr when this is not a struct or has no such field.
  const Value* field(std::string_view name) const {
    const Struct* s = as<Struct>();
    return s ? s->get(name) : nullptr;
  }

  // Numeric reading for sinks that sum or compare: int, double, or a decimal string.
  std::optional<double> to_number() const {
    if (auto d = as<double>()) return *d;
    if (auto i = as<std::int64_t>()) return static_cast<double>(*i);
    if (auto s = as<std::string>()) {
      try {
        std::size_t used = 0;
        double d = std::stod(*s, &used);
        if (used == s->size()) return d;
      } catch (...) {
      }
    }
    return std::nullopt;
  }

  // Text form for keys and logs: strings as-is, numbers in shortest round-trip form.
  std::string to_text() const;

  // Overwriting in place, for a decoder or generator that fills a value whole (see
  // Record::value_to_overwrite): a string keeps its storage.
  void assign_string(std::string_view s) {
    if (auto* str = as<std::string>())
      str->assign(s.data(), s.size());
    else
      v_ = std::string(s);
  }
  void assign_bytes(std::string_view s) {
    if (auto* b = as<Bytes>())
      b->data.assign(s.data(), s.size());
    else
      v_ = Bytes{std::string(s)};
  }
  // `*this = v` for a scalar (bool, std::int64_t, double, Timestamp), without
  // std::variant's generic assignment (an indirect call) when this already holds a T, as
  // a recycled record's field does.
  template <class T>
  void set(T v) {
    if (T* held = as<T>())
      *held = v;
    else
      v_ = v;
  }
  // This value made a struct of `schema` with `size` fields, keeping the fields (and
  // their storage) it held: the caller must then set every field.
  Struct& overwrite_struct(const std::shared_ptr<const StructSchema>& schema, std::size_t size) {
    Struct* s = as<Struct>();
    if (!s) s = &v_.emplace<Struct>();
    if (s->schema != schema) s->schema = schema;
    s->fields.resize(size);
    return *s;
  }

 private:
  Variant v_;
};

inline const Value* Struct::get(std::string_view name) const {
  if (!schema) return nullptr;
  auto i = schema->index_of(name);
  return i && *i < fields.size() ? &fields[*i] : nullptr;
}
inline Value* Struct::get(std::string_view name) {
  return const_cast<Value*>(static_cast<const Struct&>(*this).get(name));
}

// Looks a field up by name, remembering its index per struct schema: the fast path for
// sinks and transforms that read the same field of every record.
class FieldReader {
 public:
  explicit FieldReader(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }
  const Value* read(const Value& value) {
    const Struct* s = value.as<Struct>();
    if (!s || !s->schema) return nullptr;
    if (s->schema != cached_schema_) {
      cached_schema_ = s->schema;
      cached_index_ = s->schema->index_of(name_);
    }
    return cached_index_ && *cached_index_ < s->fields.size() ? &s->fields[*cached_index_] : nullptr;
  }

 private:
  std::string name_;
  // Held, not just its address: a decoder may drop a shape (json_decode past 4096 of
  // them) and make another at the same address, whose fields are in another order.
  std::shared_ptr<const StructSchema> cached_schema_;
  std::optional<std::size_t> cached_index_;
};

}  // namespace pipehost

#include <charconv>
#include <array>

namespace pipehost {
// Deep equality: same kind and same content; structs also need the same field names.
inline bool operator==(const Value& a, const Value& b) {
  if (a.variant().index() != b.variant().index()) return false;
  if (const auto* l = a.as<List>()) {
    const auto& r = *b.as<List>();
    if (l->size() != r.size()) return false;
    for (std::size_t i = 0; i < l->size(); ++i)
      if (!((*l)[i] == r[i])) return false;
    return true;
  }
  if (const auto* s = a.as<Struct>()) {
    const auto& r = *b.as<Struct>();
    if (!s->schema != !r.schema || (s->schema && s->schema->names() != r.schema->names()))
      return false;
    if (s->fields.size() != r.fields.size()) return false;
    for (std::size_t i = 0; i < s->fields.size(); ++i)
      if (!(s->fields[i] == r.fields[i])) return false;
    return true;
  }
  if (const auto* d = a.as<double>()) return *d == *b.as<double>();
  if (const auto* t = a.as<Timestamp>()) return *t == *b.as<Timestamp>();
  if (const auto* x = a.as<Bytes>()) return *x == *b.as<Bytes>();
  return a.to_text() == b.to_text();
}


inline std::string Value::to_text() const {
  if (auto s = as<std::string>()) return *s;
  if (auto i = as<std::int64_t>()) return std::to_string(*i);
  if (auto d = as<double>()) {
    std::array<char, 32> buf{};
    auto r = std::to_chars(buf.data(), buf.data() + buf.size(), *d);
    return std::string(buf.data(), r.ptr);
  }
  if (auto b = as<bool>()) return *b ? "true" : "false";
  if (auto t = as<Timestamp>()) return std::to_string(t->micros_since_epoch);
  if (auto b = as<Bytes>()) return b->data;
  if (is_null()) return "null";
  return "<composite>";
}
}  // namespace pipehost
