// Decodes protobuf wire bytes straight into pipehost Values, without DynamicMessage: a
// plan made once per message type maps each field number to its slot in the Struct, its
// kind and, for messages, the nested plan. Unknown field numbers are skipped; packed
// and unpacked repeated scalars are both accepted, as protobuf parsers must.
#pragma once
#include <google/protobuf/descriptor.h>

#include <limits>
#include <memory>
#include <pipehost/value.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "wire_common.hpp"

namespace pipehost::protobuf {

class DecodePlan;

struct DecodeField {
  const std::string* name = nullptr;  // for error messages
  std::uint32_t slot = 0;             // index in the Struct
  Kind kind = Kind::int64;
  bool repeated = false;
  bool map = false;                     // a map<K, V>: a List of {key, value} entries
  bool check_utf8 = false;              // a proto3 string: invalid UTF-8 is malformed
  const DecodePlan* message = nullptr;  // Kind::message
  const EnumInfo* enumeration = nullptr;
  // A member of a oneof with other members decoded: their slots, cleared when this one is
  // read (the last member on the wire wins, as protobuf's parser has it).
  const std::vector<std::uint32_t>* oneof_slots = nullptr;
  // A member of a oneof the projection leaves out, beside members it keeps: read as
  // nothing, it clears them (when it comes later on the wire, protobuf's parser has it set).
  bool clear_only = false;
};

class DecodePlan {
 public:
  std::string full_name;
  std::shared_ptr<const StructSchema> schema;
  // A fresh struct's fields: proto3 defaults ("" / 0 / false / first enum name), an empty
  // List for repeated fields, null for messages and fields with explicit presence.
  std::vector<Value> defaults;

  const DecodeField* find(std::uint32_t number) const {
    if (number < by_number_.size()) {
      const std::int32_t i = by_number_[number];
      return i < 0 ? nullptr : &fields_[static_cast<std::size_t>(i)];
    }
    auto it = sparse_.find(number);
    return it == sparse_.end() ? nullptr : &fields_[it->second];
  }
  // The slots of map fields: a key repeated on the wire keeps its last value.
  const std::vector<std::uint32_t>& map_slots() const { return map_slots_; }
  const std::vector<DecodeField>& fields() const { return fields_; }
  // The slots of proto2 `required` fields (null when absent).
  const std::vector<std::uint32_t>& required_slots() const { return required_slots_; }
  // This message or one it holds (at any depth) has a map field.
  bool maps_within() const { return maps_within_; }

 private:
  friend class DecodePlans;
  std::vector<DecodeField> fields_;
  std::vector<std::uint32_t> required_slots_;
  std::vector<std::vector<std::uint32_t>> oneofs_;  // slots per oneof (2 members or more)
  std::vector<std::uint32_t> map_slots_;
  bool maps_within_ = false;
  std::vector<std::int32_t> by_number_;  // field number -> index in fields_, -1 if none
  std::unordered_map<std::uint32_t, std::size_t> sparse_;  // numbers past the dense table
};

// The plans of one schema's messages. Each message type gets one plan, shared by every
// field of that type; recursive types work. Not thread-safe: one per decoder.
class DecodePlans {
 public:
  // `projection`: the fields of the top-level message to decode (empty: all).
  explicit DecodePlans(std::vector<std::string> projection = {})
      : projection_(std::move(projection)) {}

  // Throws std::invalid_argument when the projection names a field the message does not
  // have, and std::runtime_error for a message it cannot decode (proto2 groups).
  const DecodePlan& plan(const google::protobuf::Descriptor& message);

 private:
  void build(DecodePlan& plan, const google::protobuf::Descriptor& message,
             const std::vector<std::string>* projection);
  const DecodePlan& nested(const google::protobuf::Descriptor& message);
  void forget_since(std::size_t mark);
  void mark_maps_within();
  const EnumInfo& enumeration(const google::protobuf::EnumDescriptor& e);

  std::vector<std::string> projection_;
  std::unordered_map<const google::protobuf::Descriptor*, std::unique_ptr<DecodePlan>> plans_;
  std::vector<const google::protobuf::Descriptor*> created_;  // plans_' keys, oldest first
  // Plans are built for every type a message reaches, one call deep per reference: a
  // registered chain of 20,000 message types overflowed the stack (the process died), and
  // under AddressSanitizer 1,000 did. 100: no record nests deeper (protobuf's recursion
  // limit, the decoder's too).
  static constexpr int kMostTypeDepth = 100;
  int building_depth_ = 0;
  std::unordered_map<const google::protobuf::Descriptor*, std::unique_ptr<DecodePlan>> projected_;
  std::unordered_map<const google::protobuf::EnumDescriptor*, std::unique_ptr<EnumInfo>> enums_;
};

// What one record may cost to decode, so a hostile record is rejected instead of holding
// a task for minutes (the consumer would be evicted from its group). Nesting is bounded
// at 100 levels, as protobuf's own parser does.
struct DecodeLimits {
  std::size_t max_bytes = 16u << 20;       // the message's size
  std::uint64_t max_elements = 4u << 20;   // list elements plus nested messages' fields (+1 each)
};

// Decodes `bytes` (one message) into `out`, which becomes a Struct of plan.schema; a
// Struct already there with the same schema is reused in place. Throws InvalidRecord
// on malformed input or input over the limits, naming the field and byte offset.
void decode_message(const DecodePlan& plan, std::string_view bytes, Value& out,
                    const DecodeLimits& limits = {});

// A uint64 past the neutral value's int64 is its decimal text, as protobuf's JSON writes
// 64-bit integers (as an int64 it read as a negative number: a wrong value in a sink).
inline void set_unsigned(Value& slot, std::uint64_t v) {
  if (v <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) [[likely]]
    slot.set(static_cast<std::int64_t>(v));
  else
    slot = std::to_string(v);
}

}  // namespace pipehost::protobuf
