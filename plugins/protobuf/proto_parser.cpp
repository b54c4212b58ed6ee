#include "proto_parser.hpp"

#include <google/protobuf/compiler/parser.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <stdexcept>
#include <string>

namespace pipehost::protobuf {
namespace {

namespace gp = google::protobuf;

// Keeps the first error with its place; protoc's lines and columns count from zero.
class FirstError final : public gp::io::ErrorCollector {
 public:
  void AddError(int line, gp::io::ColumnNumber column, const std::string& message) override {
    if (text.empty())
      text = "line " + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message;
  }
  std::string text;
};

}  // namespace

void parse_proto_text(std::string_view text, gp::FileDescriptorProto& file) {
  gp::io::ArrayInputStream input(text.data(), static_cast<int>(text.size()));
  FirstError errors;
  gp::io::Tokenizer tokenizer(&input, &errors);
  gp::compiler::Parser parser;
  parser.RecordErrorsTo(&errors);
  file.Clear();
  if (!parser.Parse(&tokenizer, &file) || !errors.text.empty())
    throw std::runtime_error(errors.text.empty() ? "not a .proto file" : errors.text);
}

}  // namespace pipehost::protobuf
