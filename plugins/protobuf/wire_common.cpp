#include "wire_common.hpp"

#include <stdexcept>

namespace pipehost::protobuf {

namespace gp = google::protobuf;

Kind kind_of(const gp::FieldDescriptor& field) {
  using F = gp::FieldDescriptor;
  switch (field.type()) {
    case F::TYPE_DOUBLE:
      return Kind::double_;
    case F::TYPE_FLOAT:
      return Kind::float_;
    case F::TYPE_INT64:
      return Kind::int64;
    case F::TYPE_UINT64:
      return Kind::uint64;
    case F::TYPE_INT32:
      return Kind::int32;
    case F::TYPE_FIXED64:
      return Kind::fixed64;
    case F::TYPE_FIXED32:
      return Kind::fixed32;
    case F::TYPE_BOOL:
      return Kind::bool_;
    case F::TYPE_STRING:
      return Kind::string;
    case F::TYPE_BYTES:
      return Kind::bytes;
    case F::TYPE_UINT32:
      return Kind::uint32;
    case F::TYPE_ENUM:
      return Kind::enumeration;
    case F::TYPE_SFIXED32:
      return Kind::sfixed32;
    case F::TYPE_SFIXED64:
      return Kind::sfixed64;
    case F::TYPE_SINT32:
      return Kind::sint32;
    case F::TYPE_SINT64:
      return Kind::sint64;
    case F::TYPE_MESSAGE:
      return field.message_type()->full_name() == "google.protobuf.Timestamp" ? Kind::timestamp
                                                                              : Kind::message;
    case F::TYPE_GROUP:
      break;
  }
  throw std::runtime_error("field " + field.full_name() + ": proto2 groups are not supported");
}

WireType wire_type_of(Kind kind) {
  switch (kind) {
    case Kind::double_:
    case Kind::fixed64:
    case Kind::sfixed64:
      return kFixed64;
    case Kind::float_:
    case Kind::fixed32:
    case Kind::sfixed32:
      return kFixed32;
    case Kind::string:
    case Kind::bytes:
    case Kind::message:
    case Kind::timestamp:
      return kLengthDelimited;
    default:
      return kVarint;
  }
}

EnumInfo::EnumInfo(const gp::EnumDescriptor& e) : full_name_(e.full_name()) {
  all_names_.reserve(static_cast<std::size_t>(e.value_count()));
  for (int i = 0; i < e.value_count(); ++i) all_names_.push_back(e.value(i)->name());
  for (int i = 0; i < e.value_count(); ++i) {
    const std::int32_t n = e.value(i)->number();
    const std::string* name = &all_names_[static_cast<std::size_t>(i)];
    by_name_.emplace(*name, n);
    if (n >= 0 && n < 1024) {
      if (dense_.size() <= static_cast<std::size_t>(n))
        dense_.resize(static_cast<std::size_t>(n) + 1);
      if (!dense_[static_cast<std::size_t>(n)])
        dense_[static_cast<std::size_t>(n)] = name;  // aliases: first wins
    } else {
      sparse_.emplace(n, name);
    }
  }
}

const std::string* EnumInfo::name(std::int32_t number) const {
  if (number >= 0 && static_cast<std::size_t>(number) < dense_.size())
    return dense_[static_cast<std::size_t>(number)];
  auto it = sparse_.find(number);
  return it == sparse_.end() ? nullptr : it->second;
}

bool EnumInfo::number(const std::string& name, std::int32_t& out) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return false;
  out = it->second;
  return true;
}

std::string EnumInfo::names() const {
  std::string s;
  for (const auto& n : all_names_) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace pipehost::protobuf
