#include <doctest/doctest.h>
#include <google/protobuf/descriptor.pb.h>

#include "proto_parser.hpp"
#include "schema_loader.hpp"
#include "test_support.hpp"

using namespace pipehost::protobuf;
namespace gp = google::protobuf;

namespace {

// What protoc made of a file.
gp::FileDescriptorProto protoc_view(const std::string& name) {
  gp::FileDescriptorProto p;
  test::test_files().pool().FindFileByName(name)->CopyTo(&p);
  return p;
}

// Both built into pools and printed: equal text means equal descriptors.
std::string built(gp::FileDescriptorProto proto) {
  static std::vector<std::unique_ptr<SchemaFiles>> keep;
  keep.push_back(SchemaFiles::from_registry(test::base64(proto.SerializeAsString()), 1, nullptr));
  return keep.back()->main_file().DebugString();
}

}  // namespace

TEST_CASE("parser: reads what protoc reads (proto3 and proto2 test schemas)") {
  for (const std::string name : {"everything.proto", "legacy.proto"}) {
    CAPTURE(name);
    gp::FileDescriptorProto mine;
    parse_proto_text(test::read_text(std::string(PROTOBUF_TEST_PROTO_DIR) + "/" + name), mine);
    mine.set_name(name);
    CHECK(built(mine) == built(protoc_view(name)));
  }
}

TEST_CASE("parser: keeps explicit json_name and field options") {
  const auto files = SchemaFiles::from_registry(
      test::read_text(std::string(PROTOBUF_TEST_PROTO_DIR) + "/everything.proto"), 2, nullptr);
  CHECK(files->find_message("pipehost.test.Second.Deep").FindFieldByName("json_named")->json_name() ==
        "jsonNamed2");
  const gp::FieldDescriptor* unpacked =
      files->find_message("pipehost.test.Everything").FindFieldByName("unpacked_ints");
  CHECK(unpacked->options().has_packed());
  CHECK_FALSE(unpacked->is_packed());
}

TEST_CASE("parser: the text the encoder registers parses back to the same descriptors") {
  for (const std::string name : {"everything.proto", "legacy.proto"}) {
    CAPTURE(name);
    const gp::FileDescriptor& file = *test::test_files().pool().FindFileByName(name);
    const auto files = SchemaFiles::from_registry(schema_text(file), 3, nullptr);
    CHECK(files->main_file().DebugString() == built(protoc_view(name)));
  }
  const gp::FileDescriptor& tx = *test::project_files().pool().FindFileByName("transactions.proto");
  const auto files = SchemaFiles::from_registry(schema_text(tx), 4, nullptr);
  CHECK(files->find_message("Transaction").field_count() == 5);
}

TEST_CASE("parser: errors name the line and column") {
  gp::FileDescriptorProto f;
  CHECK_THROWS_WITH(parse_proto_text("syntax = \"proto3\";\nmessage A {\n  int32 x = ;\n}", f),
                    "line 3:13: Expected field number.");
  CHECK_THROWS_WITH(parse_proto_text("syntax = \"proto3\"; message A { int32 x = 1; ", f),
                    doctest::Contains("Reached end of input"));
  CHECK_THROWS_WITH(parse_proto_text("syntax = \"proto4\";", f),
                    doctest::Contains("proto4"));
  CHECK_THROWS_WITH(parse_proto_text("message A { string s = 1; } \"unterminated", f),
                    doctest::Contains("line 1"));
}

TEST_CASE("schema loader: registry text and base64 descriptors, imports and lookups") {
  const std::string text =
      "syntax = \"proto3\"; package p; import \"google/protobuf/timestamp.proto\";\n"
      "message M { google.protobuf.Timestamp at = 1; message N { int32 x = 1; } }";
  const auto files = SchemaFiles::from_registry(text, 12, nullptr);
  CHECK(files->main_file().name() == "schema-12.proto");
  CHECK(files->unresolved_imports().empty());
  CHECK(files->find_message("p.M").full_name() == "p.M");
  CHECK(files->find_message("N").full_name() == "p.M.N");
  CHECK(path_of(files->find_message("N")).to_string() == "[0, 0]");
  CHECK_THROWS_WITH(files->find_message("Nope"), doctest::Contains("messages: p.M, p.M.N"));

  const auto unresolved = SchemaFiles::from_registry(
      "syntax = \"proto3\"; import \"other/thing.proto\"; message A { other.Thing t = 1; }", 13,
      nullptr);
  CHECK(unresolved->unresolved_imports() == std::vector<std::string>{"other/thing.proto"});

  CHECK_THROWS_WITH(SchemaFiles::from_registry("message {", 14, nullptr),
                    doctest::Contains("schema id 14 is not valid .proto text: line 1:9"));
  CHECK_THROWS_WITH(SchemaFiles::from_registry("syntax = \"proto3\"; message A { B b = 1; }", 15, nullptr),
                    doctest::Contains("\"B\" is not defined"));
  CHECK_THROWS_WITH(SchemaFiles::from_descriptor_set("/nonexistent.desc"),
                    "cannot open descriptor set /nonexistent.desc");
}

TEST_CASE("base64") {
  std::string out;
  CHECK(decode_base64("aGVsbG8=", out));
  CHECK(out == "hello");
  CHECK(decode_base64("aGVsbG8", out));
  CHECK(out == "hello");
  CHECK(decode_base64(test::base64(std::string("\0\xff\x10", 3)), out));
  CHECK(out == std::string("\0\xff\x10", 3));
  CHECK_FALSE(decode_base64("message A {}", out));
  CHECK_FALSE(decode_base64("", out));
}

TEST_CASE("parser: Confluent-style text with custom options and an unknown options import") {
  const std::string text = R"(syntax = "proto3";
package io.confluent.examples;

import "confluent/meta.proto";
import public "google/protobuf/timestamp.proto";

option java_outer_classname = "TxProto";
option (confluent.file_meta) = { doc: "file {doc}", params: [{ key: "k", value: "v" }] };

message Tx {
  option (confluent.message_meta).doc = "a \"quoted\" doc";
  string id = 1 [(confluent.field_meta) = { doc: "the id" }, deprecated = false];
  .google.protobuf.Timestamp at = 2;
  repeated Item items = 3;
  message Item { int64 qty = 1 [(a.b).c.d = -5, (e) = inf]; }
  reserved 9, 10 to 12;
  oneof kind { option (x) = 1; string a = 4; int32 b = 5; }
  map<string, Item> by_name = 6;
}
)";
  const auto files = SchemaFiles::from_registry(text, 21, nullptr);
  CHECK(files->unresolved_imports() == std::vector<std::string>{"confluent/meta.proto"});
  const gp::Descriptor& tx = files->find_message("io.confluent.examples.Tx");
  CHECK(tx.field_count() == 6);
  CHECK(tx.FindFieldByName("at")->message_type()->full_name() == "google.protobuf.Timestamp");
  CHECK(tx.FindFieldByName("items")->message_type()->full_name() ==
        "io.confluent.examples.Tx.Item");
  CHECK(tx.FindFieldByName("by_name")->is_map());
  CHECK(tx.FindFieldByName("b")->containing_oneof()->name() == "kind");
  CHECK(message_at(files->main_file(), path_of(tx)) == &tx);
}
