#include "proto_parser.hpp"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cstdint>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>

namespace pipehost::protobuf {
namespace {

namespace gp = google::protobuf;
using Token = gp::io::Tokenizer;
using FieldProto = gp::FieldDescriptorProto;

constexpr std::int32_t kMaxFieldNumber = 536870911;  // 2^29 - 1

const std::map<std::string, FieldProto::Type, std::less<>>& scalar_types() {
  static const std::map<std::string, FieldProto::Type, std::less<>> types = {
      {"double", FieldProto::TYPE_DOUBLE},     {"float", FieldProto::TYPE_FLOAT},
      {"int64", FieldProto::TYPE_INT64},       {"uint64", FieldProto::TYPE_UINT64},
      {"int32", FieldProto::TYPE_INT32},       {"fixed64", FieldProto::TYPE_FIXED64},
      {"fixed32", FieldProto::TYPE_FIXED32},   {"bool", FieldProto::TYPE_BOOL},
      {"string", FieldProto::TYPE_STRING},     {"bytes", FieldProto::TYPE_BYTES},
      {"uint32", FieldProto::TYPE_UINT32},     {"sfixed32", FieldProto::TYPE_SFIXED32},
      {"sfixed64", FieldProto::TYPE_SFIXED64}, {"sint32", FieldProto::TYPE_SINT32},
      {"sint64", FieldProto::TYPE_SINT64}};
  return types;
}

// protoc's name for the entry type of `map<K, V> field_name`: FieldNameEntry.
std::string map_entry_name(const std::string& field) {
  std::string out;
  bool upper = true;
  for (char c : field) {
    if (c == '_') {
      upper = true;
    } else {
      out.push_back(upper && c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c);
      upper = false;
    }
  }
  return out + "Entry";
}

class Errors final : public gp::io::ErrorCollector {
 public:
  void AddError(int line, gp::io::ColumnNumber column, const std::string& message) override {
    if (first.empty())
      first =
          "line " + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message;
  }
  std::string first;
};

struct Assignment {  // `name = value` in an option
  std::string name;
  std::string value;
  Token::TokenType type = Token::TYPE_END;
};

class Parser {
 public:
  explicit Parser(std::string_view text)
      : input_(text.data(), static_cast<int>(text.size())), tokens_(&input_, &errors_) {
    next();
  }

  void file(gp::FileDescriptorProto& f) {
    while (tok().type != Token::TYPE_END) {
      if (try_consume(";")) continue;
      if (try_consume("syntax")) {
        expect("=");
        const std::string syntax = string_literal();
        if (syntax != "proto2" && syntax != "proto3") fail("unknown syntax \"" + syntax + "\"");
        proto3_ = syntax == "proto3";
        if (proto3_) f.set_syntax(syntax);
      } else if (try_consume("package")) {
        f.set_package(full_name());
      } else if (try_consume("import")) {
        const bool is_public = try_consume("public");
        const bool is_weak = !is_public && try_consume("weak");
        if (is_public) f.add_public_dependency(f.dependency_size());
        if (is_weak) f.add_weak_dependency(f.dependency_size());
        f.add_dependency(string_literal());
      } else if (try_consume("option")) {
        assignment();
      } else if (try_consume("message")) {
        message(*f.add_message_type());
        continue;
      } else if (try_consume("enum")) {
        enumeration(*f.add_enum_type());
        continue;
      } else if (try_consume("service") || try_consume("extend")) {
        full_name();
        skip_block();
        continue;
      } else {
        fail("expected a top-level statement");
      }
      expect(";");
    }
  }

 private:
  const Token::Token& tok() { return tokens_.current(); }
  void next() {
    tokens_.Next();
    if (!errors_.first.empty()) throw std::runtime_error(errors_.first);
  }
  bool at(const char* text) { return tok().type != Token::TYPE_STRING && tok().text == text; }
  bool try_consume(const char* text) {
    if (!at(text)) return false;
    next();
    return true;
  }
  void expect(const char* text) {
    if (!try_consume(text)) fail(std::string("expected \"") + text + "\"");
  }
  [[noreturn]] void fail(const std::string& what) {
    const auto& t = tok();
    throw std::runtime_error(
        "line " + std::to_string(t.line + 1) + ":" + std::to_string(t.column + 1) + ": " + what +
        (t.type == Token::TYPE_END ? ", found the end" : ", found \"" + t.text + "\""));
  }
  std::string identifier() {
    if (tok().type != Token::TYPE_IDENTIFIER) fail("expected a name");
    std::string s = tok().text;
    next();
    return s;
  }
  std::string full_name() {
    std::string s = try_consume(".") ? "." : "";
    s += identifier();
    while (try_consume(".")) s += "." + identifier();
    return s;
  }
  std::string string_literal() {
    if (tok().type != Token::TYPE_STRING) fail("expected a string");
    std::string s;
    while (tok().type == Token::TYPE_STRING) {  // adjacent literals concatenate
      Token::ParseStringAppend(tok().text, &s);
      next();
    }
    return s;
  }
  std::uint64_t integer(std::uint64_t max) {
    std::uint64_t v = 0;
    if (tok().type != Token::TYPE_INTEGER) fail("expected an integer");
    if (!Token::ParseInteger(tok().text, max, &v)) fail("integer out of range");
    next();
    return v;
  }
  std::int32_t enum_number() {
    const bool negative = try_consume("-");
    const auto max =
        static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max()) + negative;
    const auto v = static_cast<std::int64_t>(integer(max));
    return static_cast<std::int32_t>(negative ? -v : v);
  }
  std::int32_t range_bound(std::int32_t max_value) {
    if (try_consume("max")) return max_value;
    return static_cast<std::int32_t>(integer(kMaxFieldNumber));
  }

  // (a.b).c = value  -- option names and values, skipped or picked by the caller.
  Assignment assignment() {
    Assignment a;
    for (;;) {
      if (try_consume("(")) {
        a.name += "(" + full_name() + ")";
        expect(")");
      } else {
        a.name += identifier();
      }
      if (!try_consume(".")) break;
      a.name += ".";
    }
    expect("=");
    if (at("{")) {
      skip_block();
      return a;
    }
    if (try_consume("-")) a.value = "-";
    a.type = tok().type;
    if (a.type == Token::TYPE_STRING) {
      a.value = string_literal();
      return a;
    }
    if (a.type == Token::TYPE_END || a.type == Token::TYPE_SYMBOL) fail("expected an option value");
    if (a.type == Token::TYPE_INTEGER) {
      std::uint64_t v = 0;
      if (!Token::ParseInteger(tok().text, std::numeric_limits<std::uint64_t>::max(), &v))
        fail("integer out of range");
      a.value += std::to_string(v);
    } else {
      a.value += tok().text;
    }
    next();
    return a;
  }
  void skip_block() {
    expect("{");
    for (int depth = 1; depth > 0;) {
      if (tok().type == Token::TYPE_END) fail("expected \"}\"");
      if (at("{")) ++depth;
      if (at("}")) --depth;
      next();
    }
  }

  void message(gp::DescriptorProto& m) {
    m.set_name(identifier());
    expect("{");
    while (!try_consume("}")) {
      if (tok().type == Token::TYPE_END) fail("expected \"}\"");
      message_statement(m);
    }
    add_synthetic_oneofs(m);
  }

  void message_statement(gp::DescriptorProto& m) {
    if (try_consume(";")) return;
    if (try_consume("message")) return message(*m.add_nested_type());
    if (try_consume("enum")) return enumeration(*m.add_enum_type());
    if (try_consume("extend")) {
      full_name();
      return skip_block();
    }
    if (try_consume("oneof")) return oneof(m);
    if (try_consume("option")) {
      assignment();
      return expect(";");
    }
    if (try_consume("reserved")) return reserved(m);
    if (try_consume("extensions")) return extensions(m);
    auto label = FieldProto::LABEL_OPTIONAL;
    bool explicit_optional = false;
    if (try_consume("repeated"))
      label = FieldProto::LABEL_REPEATED;
    else if (try_consume("required"))
      label = FieldProto::LABEL_REQUIRED;
    else
      explicit_optional = try_consume("optional");
    if (label == FieldProto::LABEL_OPTIONAL && !explicit_optional && at("map")) {
      next();
      if (at("<")) return map_field(m);
      field(m, label, "map", -1);  // a message type named "map"
      return;
    }
    FieldProto& f = field(m, label, "", -1);
    if (explicit_optional && proto3_) f.set_proto3_optional(true);
  }

  // [label] type name = number [options];  `type_text` is set when already consumed.
  FieldProto& field(gp::DescriptorProto& m, FieldProto::Label label, std::string type_text,
                    int oneof_index) {
    FieldProto& f = *m.add_field();
    f.set_label(label);
    if (type_text.empty()) {
      if (at("group")) fail("proto2 groups are not supported");
      type_text = full_name();
    }
    if (auto it = scalar_types().find(type_text); it != scalar_types().end())
      f.set_type(it->second);
    else
      f.set_type_name(type_text);  // message or enum: resolved when the pool builds the file
    f.set_name(identifier());
    expect("=");
    f.set_number(static_cast<std::int32_t>(integer(kMaxFieldNumber)));
    if (oneof_index >= 0) f.set_oneof_index(oneof_index);
    if (try_consume("[")) {
      do field_option(f);
      while (try_consume(","));
      expect("]");
    }
    expect(";");
    return f;
  }

  void field_option(FieldProto& f) {
    const Assignment a = assignment();
    if (a.name == "default")
      f.set_default_value(a.value);
    else if (a.name == "json_name")
      f.set_json_name(a.value);
    else if (a.name == "packed")
      f.mutable_options()->set_packed(a.value == "true");
    else if (a.name == "deprecated")
      f.mutable_options()->set_deprecated(a.value == "true");
  }

  void map_field(gp::DescriptorProto& m) {
    expect("<");
    const std::string key = full_name();
    expect(",");
    const std::string value = full_name();
    expect(">");
    FieldProto& f = field(m, FieldProto::LABEL_REPEATED, "map", -1);
    f.clear_type();
    gp::DescriptorProto& entry = *m.add_nested_type();
    entry.set_name(map_entry_name(f.name()));
    entry.mutable_options()->set_map_entry(true);
    f.set_type_name(entry.name());
    int number = 1;
    for (const std::string* type : {&key, &value}) {
      FieldProto& e = *entry.add_field();
      e.set_name(number == 1 ? "key" : "value");
      e.set_number(number++);
      e.set_label(FieldProto::LABEL_OPTIONAL);
      if (auto it = scalar_types().find(*type); it != scalar_types().end())
        e.set_type(it->second);
      else
        e.set_type_name(*type);
    }
  }

  void oneof(gp::DescriptorProto& m) {
    const int index = m.oneof_decl_size();
    m.add_oneof_decl()->set_name(identifier());
    expect("{");
    while (!try_consume("}")) {
      if (try_consume(";")) continue;
      if (try_consume("option")) {
        assignment();
        expect(";");
        continue;
      }
      if (tok().type == Token::TYPE_END) fail("expected \"}\"");
      field(m, FieldProto::LABEL_OPTIONAL, "", index);
    }
  }

  // proto3 `optional` fields each get a oneof of their own, after the real ones.
  static void add_synthetic_oneofs(gp::DescriptorProto& m) {
    for (auto& f : *m.mutable_field()) {
      if (!f.proto3_optional()) continue;
      std::string name = "_" + f.name();
      for (bool taken = true; taken;) {
        taken = false;
        for (const auto& o : m.oneof_decl()) taken = taken || o.name() == name;
        for (const auto& g : m.field()) taken = taken || g.name() == name;
        if (taken) name = "X" + name;
      }
      f.set_oneof_index(m.oneof_decl_size());
      m.add_oneof_decl()->set_name(name);
    }
  }

  template <class Message>
  void reserved_names_or(Message& m, auto add_range) {
    if (tok().type == Token::TYPE_STRING) {
      do m.add_reserved_name(string_literal());
      while (try_consume(","));
    } else {
      do add_range();
      while (try_consume(","));
    }
    expect(";");
  }

  void reserved(gp::DescriptorProto& m) {
    reserved_names_or(m, [&] {
      auto* r = m.add_reserved_range();
      r->set_start(range_bound(kMaxFieldNumber));
      r->set_end((try_consume("to") ? range_bound(kMaxFieldNumber) : r->start()) + 1);
    });
  }

  void extensions(gp::DescriptorProto& m) {
    do {
      auto* r = m.add_extension_range();
      r->set_start(range_bound(kMaxFieldNumber));
      r->set_end((try_consume("to") ? range_bound(kMaxFieldNumber) : r->start()) + 1);
    } while (try_consume(","));
    if (try_consume("[")) {
      do assignment();
      while (try_consume(","));
      expect("]");
    }
    expect(";");
  }

  void enumeration(gp::EnumDescriptorProto& e) {
    e.set_name(identifier());
    expect("{");
    while (!try_consume("}")) {
      if (tok().type == Token::TYPE_END) fail("expected \"}\"");
      if (try_consume(";")) continue;
      if (try_consume("option")) {
        const Assignment a = assignment();
        if (a.name == "allow_alias") e.mutable_options()->set_allow_alias(a.value == "true");
      } else if (try_consume("reserved")) {
        reserved_names_or(e, [&] {
          auto* r = e.add_reserved_range();
          r->set_start(enum_number());
          r->set_end(
              try_consume("to")
                  ? (try_consume("max") ? std::numeric_limits<std::int32_t>::max() : enum_number())
                  : r->start());
        });
        continue;
      } else {
        auto* v = e.add_value();
        v->set_name(identifier());
        expect("=");
        v->set_number(enum_number());
        if (try_consume("[")) {
          do assignment();
          while (try_consume(","));
          expect("]");
        }
      }
      expect(";");
    }
  }

  Errors errors_;
  gp::io::ArrayInputStream input_;
  gp::io::Tokenizer tokens_;
  bool proto3_ = false;
};

}  // namespace

void parse_proto_text(std::string_view text, google::protobuf::FileDescriptorProto& file) {
  Parser(text).file(file);
}

}  // namespace pipehost::protobuf
