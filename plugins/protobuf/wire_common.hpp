// What the decoder and encoder share: how a protobuf field maps to a pipehost Value.
//
//   double, float            <-> double
//   (s|u)int32/64, (s)fixed  <-> int64 (a uint64/fixed64 above 2^63-1 is its decimal
//                                text, as protobuf's JSON writes it; the encoder takes
//                                that text, or a negative int64 for its bits)
//   bool <-> bool; string <-> string; bytes <-> Bytes; enum <-> its value's name (string;
//   an unknown number becomes its decimal text; the encoder also takes an int)
//   message <-> Struct; google.protobuf.Timestamp <-> Timestamp (microseconds)
//   repeated and map fields <-> List (a map entry is a Struct {key, value})
#pragma once
#include <google/protobuf/descriptor.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace pipehost::protobuf {

enum class Kind : std::uint8_t {
  double_,
  float_,
  int64,
  uint64,
  int32,
  uint32,
  sint32,
  sint64,
  fixed32,
  fixed64,
  sfixed32,
  sfixed64,
  bool_,
  string,
  bytes,
  enumeration,
  message,
  timestamp,
};

enum WireType : std::uint32_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5
};

Kind kind_of(const google::protobuf::FieldDescriptor& field);
WireType wire_type_of(Kind kind);
inline bool is_packable(Kind kind) {
  return kind != Kind::string && kind != Kind::bytes && kind != Kind::message &&
         kind != Kind::timestamp;
}

// An enum's names by number (decoding) and numbers by name (encoding).
class EnumInfo {
 public:
  explicit EnumInfo(const google::protobuf::EnumDescriptor& e);
  const std::string* name(std::int32_t number) const;
  bool number(const std::string& name, std::int32_t& out) const;
  const std::string& full_name() const { return full_name_; }
  std::string names() const;  // "A, B, C" for error messages

 private:
  std::string full_name_;
  std::vector<const std::string*> dense_;  // numbers 0..n
  std::unordered_map<std::int32_t, const std::string*> sparse_;
  std::unordered_map<std::string, std::int32_t> by_name_;
  std::vector<std::string> all_names_;
};

}  // namespace pipehost::protobuf
