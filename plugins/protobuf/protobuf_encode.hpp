// protobuf_encode: each record's value (a struct) encoded as a protobuf message into its
// payload, framed for the Schema Registry (magic byte, schema id, message-index path).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include <pipehost/sdk.hpp>

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
    path_ = path_of(message);
    text_ = schema_text(*message.file());
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
    const std::int32_t id = schema_id(record);
    std::string& out = record.payload.edit();
    out.clear();
    out.reserve(size_hint_);
    write_frame(out, id, path_);
    encode_message(*plan_, record.value, out);
    if (out.size() > size_hint_ && out.size() <= kMaxSizeHint) size_hint_ = out.size();
    return Verdict::keep;
  }

 private:
  static constexpr std::size_t kMaxSizeHint = 64 * 1024;

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

  std::int32_t id_for(const std::string& subject) {
    int id = -1;
    throw_if_error(context_.schema_registry().register_schema(subject, "PROTOBUF", text_, id),
          "registering " + plan_->full_name + " under subject " + subject);
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
  bool explicit_subject_ = false;
  std::string default_subject_;
  std::int32_t default_id_ = -1;
  std::unordered_map<std::string, std::int32_t> ids_by_topic_;
  std::size_t size_hint_ = 64;
};

}  // namespace pipehost::protobuf
