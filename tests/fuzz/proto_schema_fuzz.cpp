// A schema as the Schema Registry returns it: parse_proto_text over the input, then
// SchemaFiles::from_registry (.proto text or base64 FileDescriptorProto, imports from
// proto/*.proto) and what the decode transform does with the result: find messages and
// their framing paths, then, with one DecodePlans for the schema as the transform keeps,
// a plan per message and a record of it decoded. Errors must be std::runtime_error
// (InvalidRecord for the record).
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/stubs/logging.h>

#include <cstdint>
#include <memory>
#include <pipehost/value.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "proto_parser.hpp"
#include "schema_loader.hpp"
#include "wire_decoder.hpp"

namespace {

namespace gp = google::protobuf;
using namespace pipehost::protobuf;

std::unique_ptr<SchemaFiles> g_imports;

void collect(const gp::Descriptor& message, std::vector<const gp::Descriptor*>& out) {
  out.push_back(&message);
  for (int i = 0; i < message.nested_type_count(); ++i) collect(*message.nested_type(i), out);
}

void append_varint(std::string& out, std::uint64_t v) {
  for (; v >= 0x80; v >>= 7) out.push_back(static_cast<char>(v | 0x80));
  out.push_back(static_cast<char>(v));
}

// A record with every field of `message` once, each empty or zero: decoding it walks the
// plan of every field, nested messages' plans included.
std::string every_field(const gp::Descriptor& message) {
  using F = gp::FieldDescriptor;
  std::string out;
  for (int i = 0; i < message.field_count(); ++i) {
    const F& f = *message.field(i);
    const auto tag = static_cast<std::uint64_t>(f.number()) << 3;
    switch (f.type()) {
      case F::TYPE_GROUP:
        continue;
      case F::TYPE_STRING: case F::TYPE_BYTES: case F::TYPE_MESSAGE:
        append_varint(out, tag | 2);
        out.push_back('\0');
        break;
      case F::TYPE_DOUBLE: case F::TYPE_FIXED64: case F::TYPE_SFIXED64:
        append_varint(out, tag | 1);
        out.append(8, '\0');
        break;
      case F::TYPE_FLOAT: case F::TYPE_FIXED32: case F::TYPE_SFIXED32:
        append_varint(out, tag | 5);
        out.append(4, '\0');
        break;
      default:
        append_varint(out, tag);
        out.push_back('\0');
    }
  }
  return out;
}

void use(const SchemaFiles& files) {
  const gp::FileDescriptor& file = files.main_file();
  (void)schema_text(file);
  std::vector<const gp::Descriptor*> messages;
  for (int i = 0; i < file.message_type_count(); ++i) collect(*file.message_type(i), messages);
  DecodePlans plans;
  for (const gp::Descriptor* message : messages) {
    try {
      FUZZ_CHECK(message_at(file, path_of(*message)) == message);
    } catch (const std::runtime_error&) {  // nested deeper than Confluent framing can name
    }
    try {
      (void)files.find_message(message->full_name());
      const DecodePlan& plan = plans.plan(*message);
      pipehost::Value record;
      decode_message(plan, every_field(*message), record);
    } catch (const std::runtime_error&) {
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  gp::SetLogHandler(nullptr);  // protobuf's warnings about odd schemas, not findings
  g_imports = SchemaFiles::from_descriptor_set(FUZZ_PROJECT_DESCRIPTOR_SET);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    gp::FileDescriptorProto file;
    parse_proto_text(text, file);
  } catch (const std::runtime_error&) {
  } catch (...) {
    pipehost::fuzz::undocumented_exception("parse_proto_text");
  }
  std::unique_ptr<SchemaFiles> files;
  try {
    files = SchemaFiles::from_registry(text, 7, g_imports.get());
  } catch (const std::runtime_error&) {
    return 0;
  } catch (...) {
    pipehost::fuzz::undocumented_exception("SchemaFiles::from_registry");
  }
  try {
    use(*files);
  } catch (...) {
    pipehost::fuzz::undocumented_exception("using a registry schema");
  }
  return 0;
}
