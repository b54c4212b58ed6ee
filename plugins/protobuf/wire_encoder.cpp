#include "wire_encoder.hpp"

#include <google/protobuf/descriptor.pb.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <pipehost/status.hpp>
#include <pipehost/utf8.hpp>

namespace pipehost::protobuf {
namespace {

namespace gp = google::protobuf;
using Limits32 = std::numeric_limits<std::int32_t>;
using Limits64 = std::numeric_limits<std::int64_t>;

constexpr int kMaxDepth = 100;

struct EncodeError {
  std::string path;  // "items[2].name", built on the way out
  std::string reason;
};

void prefix(EncodeError& e, const std::string& segment) {
  const bool join = !e.path.empty() && e.path[0] != '[';
  e.path = segment + (join ? "." : "") + e.path;
}

const char* type_name(const Value& v) {
  static const char* const names[] = {"null",  "a bool",      "an integer", "a double", "a string",
                                      "bytes", "a timestamp", "a list",     "a struct"};
  return names[v.variant().index()];
}

[[noreturn]] void wrong_type(const char* expected, const Value& v) {
  throw EncodeError{"", std::string("expected ") + expected + ", got " + type_name(v)};
}

void put_varint(std::string& out, std::uint64_t v) {
  char buf[10];
  std::size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out.append(buf, n);
}

std::uint8_t varint_to(char* buf, std::uint64_t v) {
  std::uint8_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  return n;
}

// Runs `body`, which appends a value, and puts its length in front of it.
template <class Body>
void length_prefixed(std::string& out, Body&& body) {
  const std::size_t at = out.size();
  out.push_back('\0');  // room for a length under 128, the usual case
  body();
  const std::size_t length = out.size() - at - 1;
  char buf[10];
  const std::uint8_t n = varint_to(buf, length);
  if (n > 1) out.insert(at, n - 1, '\0');
  std::memcpy(&out[at], buf, n);
}

std::int64_t integer_of(const Value& v, std::int64_t min, std::int64_t max) {
  std::int64_t i = 0;
  if (const auto* p = v.as<std::int64_t>())
    i = *p;
  else if (const auto* d = v.as<double>(); d && std::trunc(*d) == *d && std::fabs(*d) < 9.2e18)
    i = static_cast<std::int64_t>(*d);
  else
    wrong_type("an integer", v);
  if (i < min || i > max)
    throw EncodeError{"", "value " + std::to_string(i) + " is out of range [" +
                              std::to_string(min) + ", " + std::to_string(max) + "]"};
  return i;
}

double number_of(const Value& v) {
  if (const auto* d = v.as<double>()) return *d;
  if (const auto* i = v.as<std::int64_t>()) return static_cast<double>(*i);
  wrong_type("a number", v);
}

std::int32_t enum_number(const EncodeField& f, const Value& v) {
  const auto* s = v.as<std::string>();
  if (!s) return static_cast<std::int32_t>(integer_of(v, Limits32::min(), Limits32::max()));
  std::int32_t n = 0;
  if (f.enumeration->number(*s, n)) return n;
  const auto r =
      std::from_chars(s->data(), s->data() + s->size(), n);  // an unnamed number, as decoded
  if (r.ec == std::errc() && r.ptr == s->data() + s->size()) return n;
  throw EncodeError{"", "'" + *s + "' is not a value of enum " + f.enumeration->full_name() + " (" +
                            f.enumeration->names() + ")"};
}

// A scalar's bits as the wire carries them (varint value, or fixed-width bits).
std::uint64_t scalar_bits(const EncodeField& f, const Value& v) {
  switch (f.kind) {
    case Kind::double_:
      return std::bit_cast<std::uint64_t>(number_of(v));
    case Kind::float_:
      return std::bit_cast<std::uint32_t>(static_cast<float>(number_of(v)));
    case Kind::uint64:
    case Kind::fixed64:
      // Past 2^63-1 as decimal text, as decoded (and as protobuf's JSON writes it); a
      // negative int64 stands for one too (its bits).
      if (const auto* s = v.as<std::string>()) {
        std::uint64_t u = 0;
        const auto r = std::from_chars(s->data(), s->data() + s->size(), u);
        if (r.ec != std::errc() || r.ptr != s->data() + s->size())
          throw EncodeError{"", "'" + *s + "' is not an unsigned 64-bit integer"};
        return u;
      }
      return static_cast<std::uint64_t>(integer_of(v, Limits64::min(), Limits64::max()));
    case Kind::int64:
    case Kind::sfixed64:
      return static_cast<std::uint64_t>(integer_of(v, Limits64::min(), Limits64::max()));
    case Kind::int32:
      return static_cast<std::uint64_t>(integer_of(v, Limits32::min(), Limits32::max()));
    case Kind::sfixed32:
      return static_cast<std::uint32_t>(
          static_cast<std::int32_t>(integer_of(v, Limits32::min(), Limits32::max())));
    case Kind::uint32:
    case Kind::fixed32:
      return static_cast<std::uint64_t>(integer_of(v, 0, 0xffffffffLL));
    case Kind::sint32: {
      const auto i = static_cast<std::int32_t>(integer_of(v, Limits32::min(), Limits32::max()));
      return (static_cast<std::uint32_t>(i) << 1) ^ static_cast<std::uint32_t>(i >> 31);
    }
    case Kind::sint64: {
      const std::int64_t i = integer_of(v, Limits64::min(), Limits64::max());
      return (static_cast<std::uint64_t>(i) << 1) ^ static_cast<std::uint64_t>(i >> 63);
    }
    case Kind::bool_:
      if (const auto* b = v.as<bool>()) return *b ? 1 : 0;
      wrong_type("a bool", v);
    case Kind::enumeration:
      return static_cast<std::uint64_t>(std::int64_t{enum_number(f, v)});
    default:
      break;
  }
  throw EncodeError{"", "not a scalar field"};
}

void put_scalar(std::string& out, Kind kind, std::uint64_t bits) {
  char buf[8];
  switch (wire_type_of(kind)) {
    case kFixed64:
      std::memcpy(buf, &bits, 8);
      out.append(buf, 8);
      return;
    case kFixed32: {
      const auto b32 = static_cast<std::uint32_t>(bits);
      std::memcpy(buf, &b32, 4);
      out.append(buf, 4);
      return;
    }
    default:
      put_varint(out, bits);
  }
}

const std::string* text_of(const Value& v, bool bytes) {
  if (const auto* s = v.as<std::string>()) return s;
  if (const auto* b = v.as<Bytes>()) return &b->data;
  wrong_type(bytes ? "bytes" : "a string", v);
}

void encode_struct(const EncodePlan& plan, const Struct& s, std::string& out, int depth);

void put_timestamp(const Timestamp& t, std::string& out) {
  std::int64_t seconds = t.micros_since_epoch / 1000000;
  std::int64_t micros = t.micros_since_epoch % 1000000;
  if (micros < 0) {  // nanos are never negative in a Timestamp
    --seconds;
    micros += 1000000;
  }
  if (seconds != 0) {
    out.push_back(0x08);
    put_varint(out, static_cast<std::uint64_t>(seconds));
  }
  if (micros != 0) {
    out.push_back(0x10);
    put_varint(out, static_cast<std::uint64_t>(micros * 1000));
  }
}

// One value after its tag: strings, bytes and messages with their length.
void put_value(const EncodeField& f, const Value& v, std::string& out, int depth) {
  switch (f.kind) {
    case Kind::string:
    case Kind::bytes: {
      const std::string* s = text_of(v, f.kind == Kind::bytes);
      if (f.check_utf8 && !utf8::valid(*s))
        throw EncodeError{"", "the string is not valid UTF-8, which a proto3 string must be (protobuf's parsers refuse "
                              "the whole message); make the field bytes, or fix the value"};
      put_varint(out, s->size());
      out.append(*s);
      return;
    }
    case Kind::timestamp:
      if (const auto* t = v.as<Timestamp>())
        return length_prefixed(out, [&] { put_timestamp(*t, out); });
      [[fallthrough]];  // or a Struct {seconds, nanos}
    case Kind::message: {
      const auto* s = v.as<Struct>();
      if (!s) wrong_type(f.kind == Kind::timestamp ? "a timestamp or struct" : "a struct", v);
      return length_prefixed(out, [&] { encode_struct(*f.message, *s, out, depth + 1); });
    }
    default:
      put_scalar(out, f.kind, scalar_bits(f, v));
  }
}

void encode_repeated(const EncodeField& f, const List& list, std::string& out, int depth) {
  std::size_t i = 0;
  try {
    if (f.packed) {
      out.append(f.packed_tag, f.packed_tag_size);
      length_prefixed(out, [&] {
        for (; i < list.size(); ++i) put_scalar(out, f.kind, scalar_bits(f, list[i]));
      });
      return;
    }
    for (; i < list.size(); ++i) {
      if (list[i].is_null()) throw EncodeError{"", "a repeated field cannot hold null"};
      out.append(f.tag, f.tag_size);
      put_value(f, list[i], out, depth);
    }
  } catch (EncodeError& e) {
    prefix(e, "[" + std::to_string(i) + "]");
    throw;
  }
}

void encode_field(const EncodeField& f, const Value& v, std::string& out, int depth) {
  if (f.repeated) {
    const auto* list = v.as<List>();
    if (!list) wrong_type("a list", v);
    if (!list->empty()) encode_repeated(f, *list, out, depth);
    return;
  }
  if (is_packable(f.kind)) {
    const std::uint64_t bits = scalar_bits(f, v);
    if (bits == 0 && !f.presence) return;  // proto3 leaves defaults out
    out.append(f.tag, f.tag_size);
    put_scalar(out, f.kind, bits);
    return;
  }
  if (!f.presence && (f.kind == Kind::string || f.kind == Kind::bytes) &&
      text_of(v, f.kind == Kind::bytes)->empty())
    return;
  out.append(f.tag, f.tag_size);
  put_value(f, v, out, depth);
}

void encode_struct(const EncodePlan& plan, const Struct& s, std::string& out, int depth) {
  if (depth >= kMaxDepth) throw EncodeError{"", "messages nested too deeply"};
  if (!s.schema) throw EncodeError{"", "the struct has no field names"};
  for (std::size_t i = 0; i < plan.fields.size(); ++i) {
    // Asked again for every field: a nested message of the same type (a recursive one)
    // with another shape refills the plan's one cached set of slots.
    const std::int32_t slot = plan.slots_for(s.schema)[i];
    const bool absent = slot < 0 || static_cast<std::size_t>(slot) >= s.fields.size() ||
                        s.fields[static_cast<std::size_t>(slot)].is_null();
    if (absent && plan.fields[i].required)
      throw EncodeError{plan.fields[i].name, "no value, but it is required (proto2): protobuf's "
                                             "parsers refuse a message without it"};
    if (absent) continue;
    const Value& v = s.fields[static_cast<std::size_t>(slot)];
    try {
      encode_field(plan.fields[i], v, out, depth);
    } catch (EncodeError& e) {
      prefix(e, plan.fields[i].name);
      throw;
    }
  }
}

}  // namespace

const std::vector<std::int32_t>& EncodePlan::slots_for(
    const std::shared_ptr<const StructSchema>& schema) const {
  if (schema == cached_) return slots_;
  slots_.assign(fields.size(), -1);
  for (std::size_t i = 0; i < fields.size(); ++i)
    if (auto at = schema->index_of(fields[i].name)) slots_[i] = static_cast<std::int32_t>(*at);
  cached_ = schema;
  return slots_;
}

const EncodePlan& EncodePlans::plan(const gp::Descriptor& message) {
  if (auto it = plans_.find(&message); it != plans_.end()) return *it->second;
  auto owned = std::make_unique<EncodePlan>();
  EncodePlan& p = *owned;
  plans_.emplace(&message, std::move(owned));  // first, so recursive types find it
  made_.push_back(&message);
  ++depth_;
  try {
    p.full_name = message.full_name();
    for (int i = 0; i < message.field_count(); ++i) {
      const gp::FieldDescriptor& d = *message.field(i);
      EncodeField f;
      f.name = d.name();
      f.kind = kind_of(d);
      f.repeated = d.is_repeated();
      f.packed = d.is_packed();
      // A map entry's key and value are written even when default, as protobuf's
      // serializers do (the bytes then match theirs).
      f.presence = d.has_presence() || d.containing_type()->options().map_entry();  // not map_key(): it CHECK-fails
      f.check_utf8 = f.kind == Kind::string && d.file()->syntax() == gp::FileDescriptor::SYNTAX_PROTO3;
      f.required = d.is_required();
      const auto number = static_cast<std::uint64_t>(d.number());
      f.tag_size = varint_to(f.tag, number << 3 | wire_type_of(f.kind));
      f.packed_tag_size = varint_to(f.packed_tag, number << 3 | kLengthDelimited);
      if (f.kind == Kind::message || f.kind == Kind::timestamp)
        f.message = &plan(*d.message_type());
      if (f.kind == Kind::enumeration) {
        auto& info = enums_[d.enum_type()];
        if (!info) info = std::make_unique<EnumInfo>(*d.enum_type());
        f.enumeration = info.get();
      }
      p.fields.push_back(std::move(f));
    }
    // protobuf's serializer writes fields by number; so do we, for identical bytes.
    std::vector<std::pair<int, std::size_t>> order;
    for (int i = 0; i < message.field_count(); ++i)
      order.emplace_back(message.field(i)->number(), order.size());
    std::sort(order.begin(), order.end());
    std::vector<EncodeField> sorted;
    for (const auto& [number, index] : order) sorted.push_back(std::move(p.fields[index]));
    p.fields = std::move(sorted);
  } catch (...) {
    if (--depth_ == 0) {
      for (const gp::Descriptor* d : made_) plans_.erase(d);
      made_.clear();
    }
    throw;
  }
  if (--depth_ == 0) made_.clear();
  return p;
}

void encode_message(const EncodePlan& plan, const Value& value, std::string& out) {
  const auto* s = value.as<Struct>();
  if (!s)
    throw InvalidRecord("cannot encode " + plan.full_name + ": the record value is " +
                        type_name(value) + ", not a struct");
  try {
    encode_struct(plan, *s, out, 0);
  } catch (EncodeError& e) {
    throw InvalidRecord("cannot encode " + plan.full_name + ": field '" + e.path +
                        "': " + e.reason);
  }
}

}  // namespace pipehost::protobuf
