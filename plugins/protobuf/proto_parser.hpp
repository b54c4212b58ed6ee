// Parses .proto source text into a FileDescriptorProto, for schemas the Schema Registry
// holds as text (Confluent's Java and Go serializers register that form). This is
// protoc's own front end (libprotoc's compiler::Parser over io::Tokenizer): every
// option, extend, group and edge case, maintained upstream.
#pragma once
#include <google/protobuf/descriptor.pb.h>

#include <string_view>

namespace pipehost::protobuf {

// Fills `file` (its name is left empty). Throws std::runtime_error naming the line and
// column of the first problem.
void parse_proto_text(std::string_view text, google::protobuf::FileDescriptorProto& file);

}  // namespace pipehost::protobuf
