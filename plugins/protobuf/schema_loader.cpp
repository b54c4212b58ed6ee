#include "schema_loader.hpp"

#include <google/protobuf/descriptor.pb.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "proto_parser.hpp"

namespace pipehost::protobuf {
namespace {

namespace gp = google::protobuf;

class BuildErrors final : public gp::DescriptorPool::ErrorCollector {
 public:
  void AddError(const std::string& file, const std::string& element, const gp::Message*,
                ErrorLocation, const std::string& message) override {
    if (!text.empty()) text += "; ";
    text += file + (element.empty() ? "" : " (" + element + ")") + ": " + message;
  }
  std::string text;
};

// protobuf's default JSON name of a field: lowerCamelCase.
std::string default_json_name(const std::string& name) {
  std::string out;
  bool upper = false;
  for (char c : name) {
    if (c == '_') {
      upper = true;
    } else {
      out.push_back(upper && c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c);
      upper = false;
    }
  }
  return out;
}

// protoc writes every field's json_name into descriptor sets; keeping only the ones a
// .proto file spelled out keeps the registered text as the author wrote it.
void drop_default_json_names(gp::DescriptorProto& m) {
  for (auto& f : *m.mutable_field())
    if (f.json_name() == default_json_name(f.name())) f.clear_json_name();
  for (auto& f : *m.mutable_extension())
    if (f.json_name() == default_json_name(f.name())) f.clear_json_name();
  for (auto& n : *m.mutable_nested_type()) drop_default_json_names(n);
}

void collect_names(const gp::Descriptor& m, std::vector<const gp::Descriptor*>& out) {
  out.push_back(&m);
  for (int i = 0; i < m.nested_type_count(); ++i) collect_names(*m.nested_type(i), out);
}

}  // namespace

SchemaFiles::SchemaFiles() : pool_(std::make_unique<gp::DescriptorPool>()) {}

bool is_well_known_file(std::string_view file_name) {
  return file_name.starts_with("google/protobuf/");
}

// A schema's text as a registry holds it: .proto text, or a base64 serialized
// FileDescriptorProto (confluent-kafka-python registers that).
static gp::FileDescriptorProto parse_registered(std::string_view schema, const std::string& what) {
  gp::FileDescriptorProto proto;
  std::string binary;
  if (decode_base64(schema, binary)) {
    if (!proto.ParseFromString(binary))
      throw std::runtime_error(what + " is base64 but not a serialized FileDescriptorProto");
    return proto;
  }
  try {
    parse_proto_text(schema, proto);
  } catch (const std::exception& e) {
    throw std::runtime_error(what + " is not valid .proto text: " + e.what());
  }
  return proto;
}

const gp::FileDescriptor* SchemaFiles::build(const gp::FileDescriptorProto& proto,
                                             const SchemaFiles* imports,
                                             const ReferencedFiles* referenced) {
  for (const std::string& dependency : proto.dependency()) {
    if (pool_->FindFileByName(dependency)) continue;
    if (is_well_known_file(dependency)) {
      if (const auto* known = gp::DescriptorPool::generated_pool()->FindFileByName(dependency)) {
        gp::FileDescriptorProto copy;
        known->CopyTo(&copy);
        build(copy, nullptr, nullptr);
        continue;
      }
    }
    // What the producer registered with the schema comes before a local descriptor set.
    auto registered = referenced ? referenced->find(dependency) : ReferencedFiles::const_iterator();
    if (referenced && registered != referenced->end()) {
      if (!building_.insert(dependency).second)
        throw std::runtime_error("import " + dependency + " imports itself (through its references)");
      gp::FileDescriptorProto file = parse_registered(registered->second, "import " + dependency);
      file.set_name(dependency);  // the name the importing file gives it
      build(file, imports, referenced);
      building_.erase(dependency);
      continue;
    }
    if (const auto* local = imports ? imports->pool().FindFileByName(dependency) : nullptr) {
      gp::FileDescriptorProto copy;
      local->CopyTo(&copy);
      build(copy, imports, nullptr);
      continue;
    }
    unresolved_.push_back(dependency);
    pool_->AllowUnknownDependencies();
  }
  BuildErrors errors;
  const gp::FileDescriptor* file = pool_->BuildFileCollectingErrors(proto, &errors);
  if (!file) throw std::runtime_error("invalid schema " + errors.text);
  files_.push_back(file);
  return file;
}

std::unique_ptr<SchemaFiles> SchemaFiles::from_descriptor_set(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open descriptor set " + path);
  std::stringstream bytes;
  bytes << in.rdbuf();
  gp::FileDescriptorSet set;
  if (!set.ParseFromString(bytes.str()))
    throw std::runtime_error(path +
                             " is not a protobuf descriptor set (protoc --descriptor_set_out)");
  std::unique_ptr<SchemaFiles> files(new SchemaFiles());
  // protoc writes imports before the files that use them; a set without them still builds
  // if its imports are well-known types.
  for (auto& file : *set.mutable_file()) {
    if (files->pool_->FindFileByName(file.name())) continue;
    for (auto& m : *file.mutable_message_type()) drop_default_json_names(m);
    for (auto& f : *file.mutable_extension())
      if (f.json_name() == default_json_name(f.name())) f.clear_json_name();
    try {
      files->build(file, nullptr, nullptr);
    } catch (const std::exception& e) {
      throw std::runtime_error(path + ": " + e.what());
    }
  }
  if (!files->unresolved_.empty())
    throw std::runtime_error(path + " lacks the import " + files->unresolved_.front() +
                             " (compile it with protoc --include_imports)");
  if (files->files_.empty()) throw std::runtime_error(path + " holds no .proto file");
  return files;
}

std::unique_ptr<SchemaFiles> SchemaFiles::from_registry(std::string_view schema, int schema_id,
                                                        const SchemaFiles* imports,
                                                        const ReferencedFiles* referenced) {
  gp::FileDescriptorProto proto = parse_registered(schema, "schema id " + std::to_string(schema_id));
  if (proto.name().empty() || (referenced && referenced->count(proto.name())))
    proto.set_name("schema-" + std::to_string(schema_id) + ".proto");
  std::unique_ptr<SchemaFiles> files(new SchemaFiles());
  try {
    files->build(proto, imports, referenced);
  } catch (const std::exception& e) {
    throw std::runtime_error("schema id " + std::to_string(schema_id) + ": " + e.what());
  }
  return files;
}

const gp::Descriptor& SchemaFiles::find_message(std::string_view name) const {
  if (name.starts_with(".")) name.remove_prefix(1);
  if (const gp::Descriptor* d = pool_->FindMessageTypeByName(std::string(name))) return *d;
  std::vector<const gp::Descriptor*> all;
  for (const gp::FileDescriptor* f : files_) {
    if (is_well_known_file(f->name())) continue;
    for (int i = 0; i < f->message_type_count(); ++i) collect_names(*f->message_type(i), all);
  }
  const gp::Descriptor* match = nullptr;
  int matches = 0;
  std::string known;
  for (const gp::Descriptor* d : all) {
    if (d->name() == name) {
      match = d;
      ++matches;
    }
    known += (known.empty() ? "" : ", ") + d->full_name();
  }
  if (matches == 1) return *match;
  throw std::runtime_error("message '" + std::string(name) + "' is " +
                           (matches ? "ambiguous" : "not in the schemas") + "; messages: " + known);
}

MessagePath path_of(const gp::Descriptor& message) {
  std::vector<int> reversed;
  for (const gp::Descriptor* d = &message; d; d = d->containing_type())
    reversed.push_back(d->index());
  MessagePath path = MessagePath::empty();
  for (auto it = reversed.rbegin(); it != reversed.rend(); ++it) {
    if (path.full())
      throw std::runtime_error("message " + message.full_name() + " is nested too deeply");
    path.push(*it);
  }
  return path;
}

const gp::Descriptor* message_at(const gp::FileDescriptor& file, const MessagePath& path) {
  if (path.size() == 0 || path[0] >= file.message_type_count()) return nullptr;
  const gp::Descriptor* d = file.message_type(path[0]);
  for (std::size_t i = 1; i < path.size(); ++i) {
    if (path[i] >= d->nested_type_count()) return nullptr;
    d = d->nested_type(path[i]);
  }
  return d;
}

std::string schema_text(const gp::FileDescriptor& file) { return file.DebugString(); }

bool decode_base64(std::string_view text, std::string& out) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.empty() || text.size() % 4 == 1) return false;
  out.clear();
  out.reserve(text.size() * 3 / 4);
  std::uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+' || c == '-')
      v = 62;
    else if (c == '/' || c == '_')
      v = 63;
    else
      return false;
    bits = (bits << 6) | static_cast<std::uint32_t>(v);
    if (++count == 4) {
      out.push_back(static_cast<char>(bits >> 16));
      out.push_back(static_cast<char>(bits >> 8));
      out.push_back(static_cast<char>(bits));
      bits = 0;
      count = 0;
    }
  }
  if (count == 2) out.push_back(static_cast<char>(bits >> 4));
  if (count == 3) {
    out.push_back(static_cast<char>(bits >> 10));
    out.push_back(static_cast<char>(bits >> 2));
  }
  return true;
}

}  // namespace pipehost::protobuf
