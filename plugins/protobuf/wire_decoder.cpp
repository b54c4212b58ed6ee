#include "wire_decoder.hpp"

#include <google/protobuf/descriptor.pb.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <pipehost/float_as_written.hpp>
#include <pipehost/status.hpp>
#include <pipehost/utf8.hpp>
#include <stdexcept>

namespace pipehost::protobuf {
namespace {

namespace gp = google::protobuf;
static_assert(std::endian::native == std::endian::little, "fixed-width reads assume little-endian");

constexpr int kMaxDepth = 100;  // as protobuf's default recursion limit

struct Malformed {
  const char* reason;
};

struct Cursor {
  explicit Cursor(std::string_view bytes)
      : begin(reinterpret_cast<const std::uint8_t*>(bytes.data())),
        p(begin),
        end(begin + bytes.size()) {}
  const std::uint8_t* begin;
  const std::uint8_t* p;
  const std::uint8_t* end;
  const std::string* field = nullptr;  // the field being read, for error messages
  std::uint64_t elements_left = 0;      // the record's budget of list elements and message fields

  void spend(std::uint64_t n) {
    if (n > elements_left) throw Malformed{"more list elements and message fields than max_elements"};
    elements_left -= n;
  }

  std::uint64_t varint() {
    if (p < end && *p < 0x80) return *p++;
    std::uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (p >= end) throw Malformed{"truncated varint"};
      const std::uint8_t b = *p++;
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if (b < 0x80) return v;
    }
    throw Malformed{"varint longer than 10 bytes"};
  }
  void need(std::size_t n) const {
    if (static_cast<std::size_t>(end - p) < n) throw Malformed{"truncated fixed-width value"};
  }
  std::uint32_t fixed32() {
    need(4);
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    p += 4;
    return v;
  }
  std::uint64_t fixed64() {
    need(8);
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    p += 8;
    return v;
  }
  // The end of a length-delimited value starting at p (after its length).
  const std::uint8_t* delimited_end() {
    const std::uint64_t n = varint();
    if (n > static_cast<std::uint64_t>(end - p)) throw Malformed{"length runs past the end"};
    return p + n;
  }
  std::string_view delimited() {
    const std::uint8_t* stop = delimited_end();
    std::string_view s(reinterpret_cast<const char*>(p), static_cast<std::size_t>(stop - p));
    p = stop;
    return s;
  }
};

void skip(Cursor& c, std::uint32_t wire, std::uint64_t number, int depth) {
  switch (wire) {
    case kVarint:
      c.varint();
      return;
    case kFixed64:
      c.need(8);
      c.p += 8;
      return;
    case kLengthDelimited:
      c.p = c.delimited_end();
      return;
    case kFixed32:
      c.need(4);
      c.p += 4;
      return;
    case kStartGroup:
      if (depth >= kMaxDepth) throw Malformed{"groups nested too deeply"};
      for (;;) {
        if (c.p >= c.end) throw Malformed{"unterminated group"};
        const auto tag = static_cast<std::uint32_t>(c.varint());
        const auto w = static_cast<std::uint32_t>(tag & 7);
        if (w == kEndGroup) {
          if ((tag >> 3) != number) throw Malformed{"mismatched end of group"};
          return;
        }
        skip(c, w, tag >> 3, depth + 1);
      }
    default:
      throw Malformed{"invalid wire type"};
  }
}

void decode_fields(const DecodePlan& plan, Cursor& c, std::vector<Value>& fields, int depth);

// `fields = defaults` for a recycled struct about to be decoded again (see
// decode_message), field by field without std::variant's generic copy-assignment (an
// indirect call per field, _M_replace for each string): with Value::set, decoding the
// seed's Transaction went from 1,958 to 1,802 instructions per record (bench/NOTES.md).
void reset_to_defaults(std::vector<Value>& fields, const std::vector<Value>& defaults) {
  if (fields.size() != defaults.size()) {
    fields = defaults;
    return;
  }
  for (std::size_t i = 0; i < fields.size(); ++i) {
    Value& field = fields[i];
    const Value& def = defaults[i];
    if (field.variant().index() == def.variant().index()) {
      if (auto* str = field.as<std::string>()) {
        const std::string& text = *def.as<std::string>();
        if (text.empty())
          str->clear();
        else
          str->assign(text);
        continue;
      }
      if (auto* list = field.as<List>(); list && def.as<List>()->empty()) {
        list->clear();  // keeps its capacity
        continue;
      }
      if (auto* d = field.as<double>()) {
        *d = *def.as<double>();
        continue;
      }
      if (auto* n = field.as<std::int64_t>()) {
        *n = *def.as<std::int64_t>();
        continue;
      }
      if (field.is_null()) continue;
    }
    field = def;
  }
}

void read_message(const DecodePlan& plan, Cursor& c, Value& slot, int depth) {
  if (depth >= kMaxDepth) throw Malformed{"messages nested too deeply"};
  // A message costs its fields: an empty one on the wire (2 bytes) still becomes a struct
  // of every field (48 bytes each), so 1 MB of them made ~1 GB when it cost 1.
  c.spend(1 + plan.defaults.size());
  const std::uint8_t* stop = c.delimited_end();
  Struct* s = slot.as<Struct>();
  if (!s || s->schema != plan.schema) {  // a repeated occurrence merges into the same struct
    slot = Struct{plan.schema, plan.defaults};
    s = slot.as<Struct>();
  }
  const std::uint8_t* outer_end = c.end;
  c.end = stop;
  decode_fields(plan, c, s->fields, depth + 1);
  c.end = outer_end;
}

void read_timestamp(Cursor& c, Value& slot) {
  const std::uint8_t* stop = c.delimited_end();
  const std::uint8_t* outer_end = c.end;
  c.end = stop;
  std::uint64_t seconds = 0, nanos = 0;  // unsigned: garbage may overflow, harmlessly
  if (const Timestamp* earlier = slot.as<Timestamp>()) {
    // The field came before in this record: the two merge, as repeated occurrences of a
    // message do (only the fields this one carries change).
    const std::int64_t micros = earlier->micros_since_epoch;
    const std::int64_t whole = micros / 1000000 - (micros % 1000000 < 0 ? 1 : 0);
    seconds = static_cast<std::uint64_t>(whole);
    nanos = static_cast<std::uint64_t>((micros - whole * 1000000) * 1000);
  }
  while (c.p < c.end) {
    const auto tag = static_cast<std::uint32_t>(c.varint());
    if (tag == (1 << 3 | kVarint))
      seconds = c.varint();
    else if (tag == (2 << 3 | kVarint))
      nanos = static_cast<std::uint64_t>(static_cast<std::int32_t>(c.varint()));
    else
      skip(c, static_cast<std::uint32_t>(tag & 7), tag >> 3, 1);
  }
  c.end = outer_end;
  // google.protobuf.Timestamp's own range (years 1-9999, nanos below a second): outside it
  // the microseconds would wrap into a meaningless time.
  const auto secs = static_cast<std::int64_t>(seconds);
  const auto nano = static_cast<std::int64_t>(nanos);
  if (secs < -62135596800 || secs > 253402300799 || nano < 0 || nano > 999999999)
    throw Malformed{"timestamp outside years 1-9999, or nanos not in 0-999999999"};
  slot.set(Timestamp{secs * 1000000 + nano / 1000});
}

void read_value(const DecodeField& f, Cursor& c, Value& slot, int depth) {
  switch (f.kind) {
    case Kind::double_:
      slot.set(std::bit_cast<double>(c.fixed64()));
      return;
    case Kind::float_:
      slot.set(float_as_written(std::bit_cast<float>(c.fixed32())));
      return;
    case Kind::int64:
      slot.set(static_cast<std::int64_t>(c.varint()));
      return;
    case Kind::uint64:
      set_unsigned(slot, c.varint());
      return;
    case Kind::int32:
      slot.set(std::int64_t{static_cast<std::int32_t>(c.varint())});
      return;
    case Kind::uint32:
      slot.set(std::int64_t{static_cast<std::uint32_t>(c.varint())});
      return;
    case Kind::sint32: {
      const auto v = static_cast<std::uint32_t>(c.varint());
      slot.set(std::int64_t{static_cast<std::int32_t>((v >> 1) ^ (~(v & 1) + 1))});
      return;
    }
    case Kind::sint64: {
      const std::uint64_t v = c.varint();
      slot.set(static_cast<std::int64_t>((v >> 1) ^ (~(v & 1) + 1)));
      return;
    }
    case Kind::fixed32:
      slot.set(std::int64_t{c.fixed32()});
      return;
    case Kind::sfixed32:
      slot.set(std::int64_t{static_cast<std::int32_t>(c.fixed32())});
      return;
    case Kind::fixed64:
      set_unsigned(slot, c.fixed64());
      return;
    case Kind::sfixed64:
      slot.set(static_cast<std::int64_t>(c.fixed64()));
      return;
    case Kind::bool_:
      slot.set(c.varint() != 0);
      return;
    case Kind::string: {
      const std::string_view s = c.delimited();
      if (f.check_utf8 && !utf8::valid(s)) throw Malformed{"invalid UTF-8 in a string"};
      slot.assign_string(s);
      return;
    }
    case Kind::bytes: {
      slot.assign_bytes(c.delimited());
      return;
    }
    case Kind::enumeration: {
      const auto n = static_cast<std::int32_t>(c.varint());
      if (const std::string* name = f.enumeration->name(n))
        slot.assign_string(*name);
      else
        slot = std::to_string(n);  // an open enum's value this schema does not name
      return;
    }
    case Kind::message:
      read_message(*f.message, c, slot, depth);
      return;
    case Kind::timestamp:
      read_timestamp(c, slot);
      return;
  }
}

void read_packed(const DecodeField& f, Cursor& c, List& list, int depth) {
  const std::uint8_t* stop = c.delimited_end();
  const WireType wire = wire_type_of(f.kind);
  const auto bytes = static_cast<std::size_t>(stop - c.p);
  // This many values follow (at most: a truncated last varint is malformed): a varint
  // ends at each byte without the continuation bit. Charging a byte each refused 500k
  // negative int64s (10 bytes each) as 5M elements.
  std::size_t most = wire == kFixed64 ? bytes / 8 : wire == kFixed32 ? bytes / 4 : 0;
  if (wire == kVarint) {
    for (const std::uint8_t* b = c.p; b < stop; ++b) most += (*b & 0x80) == 0;
    if (bytes > 0 && (stop[-1] & 0x80) != 0) ++most;
  }
  c.spend(most);
  // Geometric growth: reserving exactly size + n for each of many small chunks of one
  // field would copy the list every time (quadratic in the record's size).
  if (list.capacity() < list.size() + most)
    list.reserve(std::max(list.size() + most, 2 * list.capacity()));
  const std::uint8_t* outer_end = c.end;
  c.end = stop;
  while (c.p < c.end) read_value(f, c, list.emplace_back(), depth);
  c.end = outer_end;
}

// Out of the field loop: most messages have no oneof.
[[gnu::noinline]] void clear_other_members(const DecodeField& f, std::vector<Value>& fields) {
  for (std::uint32_t other : *f.oneof_slots)
    if (other != f.slot) fields[other] = Value();
}

// A map key's order among keys (ints, bools or strings): its kind, then its value.
bool key_before(const Value& a, const Value& b) {
  if (a.variant().index() != b.variant().index()) return a.variant().index() < b.variant().index();
  if (const auto* x = a.as<std::string>()) return *x < *b.as<std::string>();
  if (const auto* x = a.as<std::int64_t>()) return *x < *b.as<std::int64_t>();
  if (const auto* x = a.as<bool>()) return *x < *b.as<bool>();
  return false;
}

const Value& key_of(const Value& entry) {
  static const Value kNone;
  const Struct* s = entry.as<Struct>();
  return s && !s->fields.empty() ? s->fields[0] : kNone;
}

// A map whose key comes twice on the wire (messages merged, or a writer's) keeps the
// last value, as protobuf's parser does. A short map is scanned, a long one sorted by key:
// never quadratic in a map's size.
void keep_last_of_each_key(List& entries) {
  const std::size_t n = entries.size();
  if (n < 2) return;
  std::vector<bool> gone(n, false);
  bool any = false;
  if (n <= 16) {
    for (std::size_t i = 1; i < n; ++i)
      for (std::size_t j = 0; j < i; ++j)
        if (!gone[j] && key_of(entries[j]) == key_of(entries[i])) gone[j] = any = true;
  } else {
    std::vector<std::uint32_t> order(n);
    for (std::size_t i = 0; i < n; ++i) order[i] = static_cast<std::uint32_t>(i);
    std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
      return key_before(key_of(entries[a]), key_of(entries[b]));
    });
    for (std::size_t k = 1; k < n; ++k)
      if (key_of(entries[order[k - 1]]) == key_of(entries[order[k]])) gone[order[k - 1]] = any = true;
  }
  if (!any) return;
  std::size_t kept = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (!gone[i]) {
      if (kept != i) entries[kept] = std::move(entries[i]);
      ++kept;
    }
  entries.resize(kept);
}

void decode_fields(const DecodePlan& plan, Cursor& c, std::vector<Value>& fields, int depth) {
  while (c.p < c.end) {
    c.field = nullptr;
    // Tags are 32-bit: protobuf's parser keeps the low 32 bits of a longer varint.
    const auto tag = static_cast<std::uint32_t>(c.varint());
    const auto wire = static_cast<std::uint32_t>(tag & 7);
    const std::uint64_t number = tag >> 3;
    if (number == 0) throw Malformed{"invalid field number"};
    const DecodeField* f = plan.find(static_cast<std::uint32_t>(number));
    if (!f) {
      skip(c, wire, number, depth);  // unknown to this schema, or not in the projection
      continue;
    }
    if (f->clear_only) [[unlikely]] {
      if (wire == wire_type_of(f->kind))
        for (std::uint32_t member : *f->oneof_slots) fields[member] = Value();
      skip(c, wire, number, depth);
      continue;
    }
    c.field = f->name;
    Value& slot = fields[f->slot];
    if (wire == wire_type_of(f->kind)) {
      // Only a member read clears the others: one with a wire type it cannot have is an
      // unknown field to protobuf's parser, and the member set before stays.
      if (f->oneof_slots) [[unlikely]]
        clear_other_members(*f, fields);
      if (f->repeated) {
        c.spend(1);
        read_value(*f, c, slot.as<List>()->emplace_back(), depth);
      }
      else
        read_value(*f, c, slot, depth);
    } else if (wire == kLengthDelimited && f->repeated && is_packable(f->kind)) {
      read_packed(*f, c, *slot.as<List>(), depth);
    } else {
      skip(c, wire, number, depth);  // a wire type the field cannot have: unknown, as protobuf does
    }
  }
}

// Once the whole record is read: a nested message that comes many times merges into one
// struct, and deduplicating its maps at every occurrence was quadratic in the record.
void keep_last_of_each_key_within(const DecodePlan& plan, std::vector<Value>& fields) {
  for (std::uint32_t slot : plan.map_slots())
    if (List* entries = fields[slot].as<List>()) keep_last_of_each_key(*entries);
  for (const DecodeField& f : plan.fields()) {
    if (!f.message || !f.message->maps_within()) continue;
    Value& v = fields[f.slot];
    if (List* items = v.as<List>()) {
      for (Value& item : *items)
        if (Struct* s = item.as<Struct>()) keep_last_of_each_key_within(*f.message, s->fields);
    } else if (Struct* s = v.as<Struct>()) {
      keep_last_of_each_key_within(*f.message, s->fields);
    }
  }
}

}  // namespace

void decode_message(const DecodePlan& plan, std::string_view bytes, Value& out,
                    const DecodeLimits& limits) {
  if (bytes.size() > limits.max_bytes)
    throw InvalidRecord("protobuf " + plan.full_name + " of " + std::to_string(bytes.size()) +
                        " bytes is larger than max_record_bytes (" +
                        std::to_string(limits.max_bytes) + ")");
  // A struct already there is overwritten in place: its fields' strings and lists keep
  // their storage (Record::value_to_overwrite hands decoders an earlier record's).
  Struct* s = out.as<Struct>();
  if (s) {
    if (s->schema != plan.schema) s->schema = plan.schema;
    reset_to_defaults(s->fields, plan.defaults);
  } else {
    out = Struct{plan.schema, plan.defaults};
    s = out.as<Struct>();
  }
  Cursor c(bytes);
  c.elements_left = limits.max_elements;
  try {
    decode_fields(plan, c, s->fields, 0);
    if (plan.maps_within()) keep_last_of_each_key_within(plan, s->fields);
    // As protobuf's parser refuses a message without a proto2 `required` field (checked
    // for the record's own fields; a nested message's may come in a later occurrence).
    for (std::uint32_t slot : plan.required_slots())
      if (s->fields[slot].is_null()) {
        const std::string name = s->schema->names()[slot];
        out = Value();
        throw InvalidRecord("protobuf " + plan.full_name + " has no value for its required field '" + name + "'");
      }
  } catch (const Malformed& m) {
    out = Value();  // half decoded (into reused storage: see Record::value_to_overwrite)
    throw InvalidRecord("malformed protobuf " + plan.full_name + ": " + m.reason +
                        (c.field ? " in field '" + *c.field + "'" : std::string()) + " at byte " +
                        std::to_string(c.p - c.begin));
  } catch (...) {
    out = Value();
    throw;
  }
}

}  // namespace pipehost::protobuf
