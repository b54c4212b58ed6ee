// Encodes pipehost Values straight to protobuf wire bytes, without DynamicMessage: a plan
// made once per message type lists its fields with their tags precomputed, and finds
// each one's slot in a Struct once per StructSchema. The output is what protobuf's own
// serializer writes: fields by number, proto3 defaults omitted, repeated scalars packed
// unless the schema says otherwise.
#pragma once
#include <google/protobuf/descriptor.h>

#include <memory>
#include <pipehost/value.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "wire_common.hpp"

namespace pipehost::protobuf {

class EncodePlan;

struct EncodeField {
  std::string name;
  Kind kind = Kind::int64;
  bool repeated = false;
  bool packed = false;
  bool presence = false;  // written even when it holds the default value
  bool check_utf8 = false;  // a proto3 string: protobuf's parsers refuse invalid UTF-8
  bool required = false;    // proto2 `required`: protobuf's parsers refuse a message without it
  char tag[5] = {};       // the field's tag with the kind's wire type
  std::uint8_t tag_size = 0;
  char packed_tag[5] = {};
  std::uint8_t packed_tag_size = 0;
  const EncodePlan* message = nullptr;  // messages, and Timestamp given as a Struct
  const EnumInfo* enumeration = nullptr;
};

class EncodePlan {
 public:
  std::string full_name;
  std::vector<EncodeField> fields;  // by field number

  // slots[i]: where fields[i] sits in a Struct of `schema`, -1 when it has no such field.
  // Remembers the last schema, so a stream of same-shaped values looks names up once.
  const std::vector<std::int32_t>& slots_for(
      const std::shared_ptr<const StructSchema>& schema) const;

 private:
  mutable std::shared_ptr<const StructSchema> cached_;  // held so its address is not reused
  mutable std::vector<std::int32_t> slots_;
};

// The plans of one descriptor pool's messages. Not thread-safe: one per encoder.
class EncodePlans {
 public:
  const EncodePlan& plan(const google::protobuf::Descriptor& message);

 private:
  std::unordered_map<const google::protobuf::Descriptor*, std::unique_ptr<EncodePlan>> plans_;
  std::unordered_map<const google::protobuf::EnumDescriptor*, std::unique_ptr<EnumInfo>> enums_;
  // The plans the outermost plan() call made so far: they may point at each other, so a
  // failure drops all of them, not only the one that failed.
  std::vector<const google::protobuf::Descriptor*> made_;
  int depth_ = 0;
};

// Appends the wire bytes of `value` (a Struct) to `out`. A field missing from the struct
// or null is left out. Throws InvalidRecord naming the field when a value has a type
// the field cannot take; `out` then holds a partial message.
void encode_message(const EncodePlan& plan, const Value& value, std::string& out);

}  // namespace pipehost::protobuf
