// Parses .proto source text into a FileDescriptorProto, as protoc's front end does, for
// schemas the Schema Registry holds as text (Confluent's Java and Go serializers register
// that form).
//
// Why not google::protobuf::compiler::Parser: it lives in libprotoc, whose headers
// (Debian's libprotoc-dev) are not among the project's build dependencies, and this
// plugin may not add one. This parser uses libprotobuf's own io::Tokenizer and covers
// proto2 and proto3 as the registry hands them out: package, imports, nested messages
// and enums, oneofs, proto3 `optional`, maps, reserved and extension ranges, field
// options `packed`, `default`, `json_name`, `deprecated`, enum `allow_alias`. Other
// options, services and `extend` blocks are read and skipped: decoding does not need
// them. Groups are refused with a clear error. tests/parser_test.cpp checks the result
// against protoc's own output for a schema using all of the above.
#pragma once
#include <google/protobuf/descriptor.pb.h>

#include <string_view>

namespace pipehost::protobuf {

// Fills `file` (its name is left empty). Throws std::runtime_error naming the line and
// column of the first problem.
void parse_proto_text(std::string_view text, google::protobuf::FileDescriptorProto& file);

}  // namespace pipehost::protobuf
