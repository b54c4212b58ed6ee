// protobuf_encode: each record's value (a struct) encoded as a protobuf message into its
// payload, framed for the Schema Registry (magic byte, schema id, message-index path).
#pragma once
#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <optional>
#include <string>
#include <unordered_map>

#include <pipehost/sdk.hpp>
#include <pipehost/subject_header.hpp>

#include "framing.hpp"
#include "schema_loader.hpp"
#include "wire_encoder.hpp"

namespace pipehost::protobuf {

namespace gp = google::protobuf;

struct ProtobufEncodeConfig {
  std::string message;
  std::optional<std::string> topic;
  std::optional<std::string> subject;
  std::optional<std::string> descriptor_set;

  static void declare(OptionList<ProtobufEncodeConfig>& o);
  void check(Checker& c) const;
  std::string descriptor_set_or(const std::string& data_dir) const {
    return descriptor_set.value_or(data_dir + "/proto/pipehost.desc");
  }
};

class ProtobufEncode final : public RecordTransform {
 public:
  using Config = ProtobufEncodeConfig;
  ProtobufEncode(const Config& config, Context& context)
      : context_(context),
        files_(SchemaFiles::from_descriptor_set(config.descriptor_set_or(context.data_dir()))) {
    const gp::Descriptor& message = files_->find_message(config.message);
    plan_ = &plans_.plan(message);
    text_ = schema_text(*message.file());
    path_ = path_in_registered_text(message);
    std::set<std::string> seen;
    collect_imports(*message.file(), seen);
    main_imports_ = own_imports(*message.file());
    explicit_subject_ = config.subject.has_value();
    if (explicit_subject_)
      default_subject_ = *config.subject;
    else if (config.topic)
      default_subject_ = *config.topic + "-value";
  }

  void start() override {
    if (!default_subject_.empty()) default_id_ = id_for(default_subject_);
  }

  Verdict apply(Record& record) override {
    // The subject a stage before chose (the router's `subjects`) goes first, as in
    // avro_encode; the header is for this stage only, and goes once the record is written.
    auto header = std::find_if(record.headers.begin(), record.headers.end(),
                               [](const Header& h) { return h.key == kSubjectHeader; });
    const bool has_header = header != record.headers.end();
    const std::int32_t id = has_header ? id_of_subject(header->value) : schema_id(record);
    // Into a string of its own, which becomes the payload only once the value is written
    // whole: a rejected record keeps the payload it came with (its dead letter shows it).
    std::string& out = scratch_;
    out.clear();
    out.reserve(size_hint_);
    write_frame(out, id, path_);
    encode_message(*plan_, record.value, out);
    if (out.size() > size_hint_ && out.size() <= kMaxSizeHint) size_hint_ = out.size();
    if (record.payload.borrowed()) record.payload = std::string();
    std::swap(record.payload.edit(), scratch_);  // the record's old buffer is the next scratch
    if (has_header) record.headers.erase(header);
    return Verdict::keep;
  }

 private:
  static constexpr std::size_t kMaxSizeHint = 64 * 1024;
  std::string scratch_;

  std::int32_t schema_id(const Record& record) {
    if (explicit_subject_ || record.destination_topic.empty()) {
      if (default_id_ < 0) {
        if (default_subject_.empty())
          throw InvalidRecord(
              "no subject for this record: it has no destination topic and neither "
              "option topic nor subject is set");
        default_id_ = id_for(default_subject_);
      }
      return default_id_;
    }
    auto it = ids_by_topic_.find(record.destination_topic);
    if (it == ids_by_topic_.end())
      it = ids_by_topic_
               .emplace(record.destination_topic, id_for(record.destination_topic + "-value"))
               .first;
    return it->second;
  }

  // A file the message's file imports, directly or not (the well-known types aside, which a
  // registry knows): registered under its own name before the schema, which names it in
  // its references (as confluent-kafka's ProtobufSerializer does), each after its own.
  struct Import {
    std::string name;
    std::string text;
    std::vector<std::string> imports;  // its own, not well-known
  };

  static std::vector<std::string> own_imports(const gp::FileDescriptor& file) {
    std::vector<std::string> out;
    for (int i = 0; i < file.dependency_count(); ++i)
      if (!is_well_known_file(file.dependency(i)->name())) out.push_back(file.dependency(i)->name());
    return out;
  }

  void collect_imports(const gp::FileDescriptor& file, std::set<std::string>& seen) {
    for (int i = 0; i < file.dependency_count(); ++i) {
      const gp::FileDescriptor& dep = *file.dependency(i);
      if (is_well_known_file(dep.name()) || !seen.insert(dep.name()).second) continue;
      collect_imports(dep, seen);
      imports_.push_back({dep.name(), schema_text(dep), own_imports(dep)});
    }
  }

  std::vector<SchemaReference> references_to(const std::vector<std::string>& names) const {
    std::vector<SchemaReference> out;
    for (const auto& name : names) out.push_back({name, name, import_versions_.at(name)});
    return out;
  }

  void register_imports() {
    for (const Import& i : imports_) {
      if (import_versions_.count(i.name)) continue;
      int id = -1, version = 0;
      throw_if_error(context_.schema_registry().register_schema(i.name, "PROTOBUF", i.text,
                                                                references_to(i.imports), id, version),
                     "registering " + i.name + " (imported by " + plan_->full_name + "'s file)");
      import_versions_[i.name] = version;
    }
  }

  // The message's index path as a reader of the registered text counts it. That text
  // (DebugString) lists a message's nested messages before its fields and leaves map
  // entries out, so a reader parsing it numbers them otherwise than the compiled
  // descriptor when a map field comes before a nested message: [0, 1] named another
  // message there (measured with protobuf_decode, which parses the text).
  MessagePath path_in_registered_text(const gp::Descriptor& message) const {
    try {
      auto parsed = SchemaFiles::from_registry(text_, 0, files_.get());
      if (const gp::Descriptor* d = parsed->pool().FindMessageTypeByName(message.full_name()))
        return path_of(*d);
    } catch (const std::exception&) {  // a text protoc cannot read back: no reader can either
    }
    return path_of(message);
  }

  std::int32_t id_of_subject(const std::string& subject) {
    if (subject.empty()) throw InvalidRecord("the pipehost.subject header is empty");
    auto it = ids_by_subject_.find(subject);
    if (it == ids_by_subject_.end()) it = ids_by_subject_.emplace(subject, id_for(subject)).first;
    return it->second;
  }

  std::int32_t id_for(const std::string& subject) {
    int id = -1;
    if (imports_.empty()) {
      throw_if_error(context_.schema_registry().register_schema(subject, "PROTOBUF", text_, id),
                     "registering " + plan_->full_name + " under subject " + subject);
    } else {
      register_imports();
      int version = 0;
      throw_if_error(context_.schema_registry().register_schema(
                         subject, "PROTOBUF", text_, references_to(main_imports_), id, version),
                     "registering " + plan_->full_name + " under subject " + subject);
    }
    context_.info("schema of " + plan_->full_name + " is id " + std::to_string(id) +
                  " under subject " + subject);
    return id;
  }

  Context& context_;
  std::unique_ptr<SchemaFiles> files_;
  EncodePlans plans_;
  const EncodePlan* plan_ = nullptr;
  MessagePath path_;
  std::string text_;
  std::vector<Import> imports_;             // each after the imports it has
  std::vector<std::string> main_imports_;   // the message's file's own
  std::map<std::string, int> import_versions_;  // registered: name -> version
  bool explicit_subject_ = false;
  std::string default_subject_;
  std::int32_t default_id_ = -1;
  std::unordered_map<std::string, std::int32_t> ids_by_topic_;
  std::unordered_map<std::string, std::int32_t> ids_by_subject_;  // from pipehost.subject headers
  std::size_t size_hint_ = 64;
};

}  // namespace pipehost::protobuf
