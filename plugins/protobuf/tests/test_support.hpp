// Helpers shared by the protobuf plugin's tests.
#pragma once
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>

#include <fstream>
#include <memory>
#include <ostream>
#include <pipehost/value.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "schema_loader.hpp"

namespace pipehost::protobuf::test {

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The project's descriptor set (proto/*.proto) and the tests' own (tests/protos).
inline const SchemaFiles& project_files() {
  static const auto files = SchemaFiles::from_descriptor_set(PIPEHOST_TEST_DESCRIPTOR_SET);
  return *files;
}
inline const SchemaFiles& test_files() {
  static const auto files = SchemaFiles::from_descriptor_set(PROTOBUF_TEST_DESCRIPTOR_SET);
  return *files;
}

inline Value make_struct(std::vector<std::pair<std::string, Value>> fields) {
  std::vector<std::string> names;
  Struct s;
  for (auto& [name, value] : fields) {
    names.push_back(name);
    s.fields.push_back(std::move(value));
  }
  s.schema = StructSchema::make(std::move(names));
  return s;
}

inline Value transaction(std::string id, std::string account, double amount,
                         std::int64_t micros = 1700000000123456) {
  return make_struct({{"transaction_id", std::move(id)},
                      {"account_number", std::move(account)},
                      {"transaction_reference", "ref-" + std::to_string(micros % 1000)},
                      {"transaction_datetime", Timestamp{micros}},
                      {"amount", amount}});
}

// A message of `name` in `files`, for producing reference bytes with protobuf itself.
inline std::unique_ptr<google::protobuf::Message> new_message(const SchemaFiles& files,
                                                              const std::string& name) {
  static google::protobuf::DynamicMessageFactory factory;
  return std::unique_ptr<google::protobuf::Message>(
      factory.GetPrototype(&files.find_message(name))->New());
}

inline std::string base64(const std::string& in) {
  static const char* const alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const auto n = static_cast<unsigned>(static_cast<unsigned char>(in[i])) << 16 |
                   static_cast<unsigned>(static_cast<unsigned char>(in[i + 1])) << 8 |
                   static_cast<unsigned char>(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out.push_back(alphabet[(n >> k) & 63]);
  }
  if (i < in.size()) {
    unsigned n = static_cast<unsigned>(static_cast<unsigned char>(in[i])) << 16;
    if (i + 1 < in.size()) n |= static_cast<unsigned>(static_cast<unsigned char>(in[i + 1])) << 8;
    out.push_back(alphabet[(n >> 18) & 63]);
    out.push_back(alphabet[(n >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? alphabet[(n >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

inline std::string bytes(std::initializer_list<int> values) {
  std::string s;
  for (int v : values) s.push_back(static_cast<char>(v));
  return s;
}

}  // namespace pipehost::protobuf::test

