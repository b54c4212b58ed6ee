// Turns schemas into descriptors: a compiled descriptor set (the encoder's source, and
// where the decoder finds non-standard imports) or one schema as the Schema Registry
// returns it (.proto text, or a base64 serialized FileDescriptorProto as
// confluent-kafka-python registers it).
#pragma once
#include <google/protobuf/descriptor.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "framing.hpp"

namespace pipehost::protobuf {

// A descriptor pool and the files built into it. Errors throw std::runtime_error.
class SchemaFiles {
 public:
  // A FileDescriptorSet as `protoc --include_imports --descriptor_set_out` writes it.
  static std::unique_ptr<SchemaFiles> from_descriptor_set(const std::string& path);

  // The schemas a registry schema's references name, by import path ("acme/money.proto"),
  // each as the registry holds it.
  using ReferencedFiles = std::map<std::string, std::string>;

  // A registry schema. Imports of google/protobuf/*.proto come from the well-known types
  // compiled into libprotobuf, others from `referenced` (the schema's references), else
  // from `imports` when given; an import found nowhere becomes a placeholder and is listed
  // in unresolved_imports().
  static std::unique_ptr<SchemaFiles> from_registry(std::string_view schema, int schema_id,
                                                    const SchemaFiles* imports,
                                                    const ReferencedFiles* referenced = nullptr);

  const google::protobuf::DescriptorPool& pool() const { return *pool_; }
  // The file the schema was built from (the last built: imports come first).
  const google::protobuf::FileDescriptor& main_file() const { return *files_.back(); }
  const std::vector<std::string>& unresolved_imports() const { return unresolved_; }

  // By full name ("pkg.Transaction"), or by simple name when that is unique. Throws
  // naming the messages there are.
  const google::protobuf::Descriptor& find_message(std::string_view name) const;

 private:
  SchemaFiles();
  const google::protobuf::FileDescriptor* build(const google::protobuf::FileDescriptorProto& proto,
                                                const SchemaFiles* imports,
                                                const ReferencedFiles* referenced);

  std::unique_ptr<google::protobuf::DescriptorPool> pool_;
  std::vector<const google::protobuf::FileDescriptor*> files_;
  std::vector<std::string> unresolved_;
  std::set<std::string> building_;  // referenced imports being built (a cycle throws)
};

bool is_well_known_file(std::string_view file_name);

// Where a message sits in its file, as the Confluent framing names it.
MessagePath path_of(const google::protobuf::Descriptor& message);
// The message a path names in a file, or nullptr.
const google::protobuf::Descriptor* message_at(const google::protobuf::FileDescriptor& file,
                                               const MessagePath& path);

// The .proto text registered for a file.
std::string schema_text(const google::protobuf::FileDescriptor& file);

// Standard base64 (padding optional). False when `text` is not base64.
bool decode_base64(std::string_view text, std::string& out);

}  // namespace pipehost::protobuf
