// Decode plans: per message type, its fields by number with their kinds, defaults and
// nested plans, built once from the descriptors (and the projection) and reused per record.
#include "wire_decoder.hpp"

#include <google/protobuf/descriptor.pb.h>

#include <algorithm>
#include <pipehost/float_as_written.hpp>

namespace pipehost::protobuf {
namespace {

namespace gp = google::protobuf;
constexpr std::uint32_t kDenseNumbers = 4096;

Value default_of(const gp::FieldDescriptor& f, Kind kind) {
  using C = gp::FieldDescriptor;
  if (f.is_repeated()) return List{};
  // Explicit presence (messages, oneof members, proto3 `optional`, proto2 `optional` and
  // `required`): absent is null, as protobuf's JSON leaves it out, never a made-up value;
  // but a proto2 field declaring `[default = ...]` says what absent means (its getter
  // reads it). Not a map entry's key or value (proto2 gives them presence): protobuf
  // reads an absent one as the default, and writers leave defaults out of entries.
  // By the option, not map_key(): that CHECK-fails (aborts) on an entry without its two
  // fields, which a schema can declare (a message with map_entry set that no map uses).
  const bool map_entry = f.containing_type() && f.containing_type()->options().map_entry();
  if (kind == Kind::message || kind == Kind::timestamp || f.containing_oneof()) return {};
  if (f.has_presence() && !map_entry && (f.is_required() || !f.has_default_value())) return {};
  switch (f.cpp_type()) {
    case C::CPPTYPE_INT32:
      return std::int64_t{f.default_value_int32()};
    case C::CPPTYPE_INT64:
      return std::int64_t{f.default_value_int64()};
    case C::CPPTYPE_UINT32:
      return std::int64_t{f.default_value_uint32()};
    case C::CPPTYPE_UINT64: {
      Value v;
      set_unsigned(v, f.default_value_uint64());
      return v;
    }
    case C::CPPTYPE_DOUBLE:
      return f.default_value_double();
    case C::CPPTYPE_FLOAT:
      return float_as_written(f.default_value_float());
    case C::CPPTYPE_BOOL:
      return f.default_value_bool();
    case C::CPPTYPE_ENUM:
      return f.default_value_enum()->name();
    case C::CPPTYPE_STRING:
      if (kind == Kind::bytes) return Bytes{f.default_value_string()};
      return f.default_value_string();
    case C::CPPTYPE_MESSAGE:
      break;
  }
  return {};
}

}  // namespace

const DecodePlan& DecodePlans::plan(const gp::Descriptor& message) {
  const std::vector<std::string>& projection = projection_;
  if (projection.empty()) {
    const DecodePlan& p = nested(message);
    mark_maps_within();
    return p;
  }
  if (auto it = projected_.find(&message); it != projected_.end()) return *it->second;
  std::string known;
  for (int i = 0; i < message.field_count(); ++i)
    known += (i ? ", " : "") + message.field(i)->name();
  for (const auto& name : projection)
    if (!message.FindFieldByName(name))
      throw std::invalid_argument("option fields names '" + name + "', which message " +
                                  message.full_name() + " does not have; its fields: " + known);
  auto plan = std::make_unique<DecodePlan>();
  DecodePlan& p = *plan;
  projected_.emplace(&message, std::move(plan));
  const std::size_t mark = created_.size();
  try {
    build(p, message, &projection);
  } catch (...) {
    projected_.erase(&message);
    forget_since(mark);
    throw;
  }
  mark_maps_within();
  return p;
}

// Which plans hold a map at some depth: to a fixed point, as types may be recursive.
void DecodePlans::mark_maps_within() {
  auto mark = [](DecodePlan& p) {
    bool within = !p.map_slots_.empty();
    for (const DecodeField& f : p.fields_) within = within || (f.message && f.message->maps_within_);
    if (within == p.maps_within_) return false;
    p.maps_within_ = within;
    return true;
  };
  for (bool changed = true; changed;) {
    changed = false;
    for (auto& [descriptor, p] : plans_) changed = mark(*p) || changed;
    for (auto& [descriptor, p] : projected_) changed = mark(*p) || changed;
  }
}

// A build that failed may have completed plans pointing at the half-built one it freed
// (a recursive type: M -> N -> M): every plan made since it began goes with it.
void DecodePlans::forget_since(std::size_t mark) {
  for (std::size_t i = created_.size(); i-- > mark;) plans_.erase(created_[i]);
  created_.resize(mark);
}

const DecodePlan& DecodePlans::nested(const gp::Descriptor& message) {
  if (auto it = plans_.find(&message); it != plans_.end()) return *it->second;
  if (building_depth_ >= kMostTypeDepth)
    throw std::runtime_error("message " + message.full_name() + " is reached through more than " +
                             std::to_string(kMostTypeDepth) +
                             " nested message types: pipehost does not decode types nested that deep");
  auto plan = std::make_unique<DecodePlan>();
  DecodePlan& p = *plan;
  const std::size_t mark = created_.size();
  plans_.emplace(&message, std::move(plan));  // first, so recursive types find it
  created_.push_back(&message);
  ++building_depth_;
  try {
    build(p, message, nullptr);
  } catch (...) {
    --building_depth_;
    forget_since(mark);
    throw;
  }
  --building_depth_;
  return p;
}

void DecodePlans::build(DecodePlan& p, const gp::Descriptor& message,
                        const std::vector<std::string>* projection) {
  std::vector<const gp::FieldDescriptor*> chosen;
  for (int i = 0; i < message.field_count(); ++i) {  // declaration order
    const gp::FieldDescriptor* f = message.field(i);
    bool wanted = !projection;
    for (std::size_t j = 0; projection && !wanted && j < projection->size(); ++j)
      wanted = (*projection)[j] == f->name();
    if (wanted) chosen.push_back(f);
  }
  std::vector<std::string> names;
  std::uint32_t max_number = 0;
  for (const auto* f : chosen) {
    names.push_back(f->name());
    max_number = std::max(max_number, static_cast<std::uint32_t>(f->number()));
  }
  p.full_name = message.full_name();
  p.schema = StructSchema::make(std::move(names), message.full_name());
  p.by_number_.assign(std::min(max_number, kDenseNumbers - 1) + 1, -1);
  // Each real oneof's decoded members (proto3 `optional` is a oneof of one: not these),
  // all gathered before fields point into them.
  std::vector<const gp::OneofDescriptor*> oneof_of;
  for (std::size_t slot = 0; slot < chosen.size(); ++slot) {
    const gp::OneofDescriptor* o = chosen[slot]->real_containing_oneof();
    if (!o) continue;
    auto at = std::find(oneof_of.begin(), oneof_of.end(), o);
    if (at == oneof_of.end()) {
      oneof_of.push_back(o);
      p.oneofs_.emplace_back();
      at = oneof_of.end() - 1;
    }
    p.oneofs_[static_cast<std::size_t>(at - oneof_of.begin())].push_back(static_cast<std::uint32_t>(slot));
  }
  for (std::size_t slot = 0; slot < chosen.size(); ++slot) {
    const gp::FieldDescriptor& f = *chosen[slot];
    DecodeField d;
    d.name = &p.schema->names()[slot];
    d.slot = static_cast<std::uint32_t>(slot);
    d.kind = kind_of(f);
    d.repeated = f.is_repeated();
    d.map = f.is_map();
    if (d.map) p.map_slots_.push_back(static_cast<std::uint32_t>(slot));
    // As protobuf's own parser: proto3 strings must be UTF-8, proto2 ones need not be.
    d.check_utf8 = d.kind == Kind::string && f.file()->syntax() == gp::FileDescriptor::SYNTAX_PROTO3;
    // A type from an import found nowhere is a placeholder without fields: its values
    // would decode as empty, silently. The record is refused instead, naming the fix.
    const bool unresolved = (d.kind == Kind::message && f.message_type()->is_placeholder()) ||
                            (d.kind == Kind::enumeration && f.enum_type()->is_placeholder());
    if (unresolved)
      throw std::runtime_error(
          "field " + f.full_name() + " has type " +
          (d.kind == Kind::message ? f.message_type()->full_name() : f.enum_type()->full_name()) +
          " from an import found neither among the well-known types, the schema's registry "
          "references nor the decoder's descriptor_set: register it as a reference, compile "
          "that .proto into the descriptor_set (protoc --include_imports), or leave the field "
          "out with `fields`");
    if (d.kind == Kind::message) d.message = &nested(*f.message_type());
    if (d.kind == Kind::enumeration) d.enumeration = &enumeration(*f.enum_type());
    if (const gp::OneofDescriptor* o = f.real_containing_oneof()) {
      const auto& slots = p.oneofs_[static_cast<std::size_t>(
          std::find(oneof_of.begin(), oneof_of.end(), o) - oneof_of.begin())];
      if (slots.size() > 1) d.oneof_slots = &slots;
    }
    p.defaults.push_back(default_of(f, d.kind));
    if (f.is_required()) p.required_slots_.push_back(static_cast<std::uint32_t>(slot));
    const auto number = static_cast<std::uint32_t>(f.number());
    if (number < p.by_number_.size())
      p.by_number_[number] = static_cast<std::int32_t>(slot);
    else
      p.sparse_.emplace(number, slot);
    p.fields_.push_back(d);
  }
  // The members of a kept oneof that the projection leaves out still end the kept ones.
  for (std::size_t o = 0; projection && o < oneof_of.size(); ++o) {
    for (int m = 0; m < oneof_of[o]->field_count(); ++m) {
      const gp::FieldDescriptor& f = *oneof_of[o]->field(m);
      if (std::find(chosen.begin(), chosen.end(), &f) != chosen.end()) continue;
      DecodeField d;
      d.kind = kind_of(f);
      d.clear_only = true;
      d.oneof_slots = &p.oneofs_[o];
      const auto number = static_cast<std::uint32_t>(f.number());
      const auto index = static_cast<std::int32_t>(p.fields_.size());
      if (number < p.by_number_.size()) p.by_number_[number] = index;
      else p.sparse_.emplace(number, static_cast<std::size_t>(index));
      p.fields_.push_back(d);
    }
  }
}

const EnumInfo& DecodePlans::enumeration(const gp::EnumDescriptor& e) {
  auto& info = enums_[&e];
  if (!info) info = std::make_unique<EnumInfo>(e);
  return *info;
}

}  // namespace pipehost::protobuf
