#include "components.hpp"

#include <chrono>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <unordered_map>

#include "framing.hpp"
#include "schema_loader.hpp"
#include "wire_decoder.hpp"
#include "wire_encoder.hpp"

namespace pipehost::protobuf {
namespace {

namespace gp = google::protobuf;

std::string descriptor_set_path(const Options& options, const Context& context) {
  if (options.has("descriptor_set")) return options.string("descriptor_set");
  return context.data_dir() + "/proto/pipehost.desc";
}

// A registry error as the matching exception, with what we were doing in front.
void check(const Status& status, const std::string& doing) {
  if (status.is_ok()) return;
  const std::string message = doing + ": " + status.message();
  switch (status.code()) {
    case Code::invalid:
      throw InvalidRecord(message);
    case Code::retriable:
      throw RetriableError(message);
    default:
      throw FatalError(message);
  }
}

class ProtobufEncode final : public RecordTransform {
 public:
  ProtobufEncode(const Options& options, Context& context)
      : context_(context),
        files_(SchemaFiles::from_descriptor_set(descriptor_set_path(options, context))) {
    const gp::Descriptor& message = files_->find_message(options.string("message"));
    plan_ = &plans_.plan(message);
    path_ = path_of(message);
    text_ = schema_text(*message.file());
    explicit_subject_ = options.has("subject");
    if (explicit_subject_)
      default_subject_ = options.string("subject");
    else if (options.has("topic"))
      default_subject_ = options.string("topic") + "-value";
  }

  void start() override {
    if (!default_subject_.empty()) default_id_ = id_for(default_subject_);
  }

  Verdict apply(Record& record) override {
    const std::int32_t id = schema_id(record);
    std::string& out = record.payload;
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
    check(context_.schema_registry().register_schema(subject, "PROTOBUF", text_, id),
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

class ProtobufDecode final : public RecordTransform {
 public:
  ProtobufDecode(const Options& options, Context& context) : context_(context) {
    if (options.has("fields")) projection_ = options.strings("fields");
    limits_.max_bytes = static_cast<std::size_t>(options.integer("max_record_bytes"));
    limits_.max_elements = static_cast<std::uint64_t>(options.integer("max_elements"));
    imports_path_ = descriptor_set_path(options, context);
    // Only for imports that are not well-known types; the default set may be absent.
    if (options.has("descriptor_set") || std::filesystem::exists(imports_path_))
      imports_ = SchemaFiles::from_descriptor_set(imports_path_);
  }

  Verdict apply(Record& record) override {
    const FrameHeader header = parse_frame(record.payload);
    const DecodePlan& plan = plan_for(header);
    decode_message(plan, std::string_view(record.payload).substr(header.size), record.value,
                   limits_);
    return Verdict::keep;
  }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kNever = Clock::time_point::max();
  static constexpr auto kUnknownIdRetry = std::chrono::seconds(30);

  struct Schema {
    explicit Schema(const std::vector<std::string>& projection) : plans(projection) {}
    std::unique_ptr<SchemaFiles> files;
    DecodePlans plans;
    std::vector<std::pair<MessagePath, const DecodePlan*>> by_path;
    std::string error;  // a schema that cannot be used, remembered so it is asked for once
    // An id the registry did not know is asked for again after a while (a registry that
    // lags behind its producers), not for every record that carries it.
    Clock::time_point retry_after = kNever;
  };

  const DecodePlan& plan_for(const FrameHeader& header) {
    if (header.schema_id != last_id_ || !last_schema_ || last_schema_->retry_after != kNever) {
      last_schema_ = &schema(header.schema_id);
      last_id_ = header.schema_id;
    }
    Schema& s = *last_schema_;
    if (!s.error.empty()) throw InvalidRecord(s.error);
    for (const auto& [path, plan] : s.by_path)
      if (path == header.path) return *plan;
    const gp::Descriptor* message = message_at(s.files->main_file(), header.path);
    if (!message)
      throw InvalidRecord("message index path " + header.path.to_string() +
                          " names no message in schema id " + std::to_string(header.schema_id));
    const DecodePlan* plan = nullptr;
    try {
      plan = &s.plans.plan(*message);
    } catch (const std::invalid_argument& e) {  // the projection does not fit the schema
      throw FatalError(std::string(e.what()) + " (schema id " + std::to_string(header.schema_id) +
                       ")");
    } catch (const std::runtime_error& e) {
      throw InvalidRecord("schema id " + std::to_string(header.schema_id) + ": " + e.what());
    }
    s.by_path.emplace_back(header.path, plan);
    return *plan;
  }

  Schema& schema(std::int32_t id) {
    auto it = schemas_.find(id);
    if (it != schemas_.end() && it->second->retry_after > Clock::now()) return *it->second;
    RegisteredSchema registered;
    const Status status = context_.schema_registry().schema_by_id(id, registered);
    auto s = std::make_unique<Schema>(projection_);
    if (status.code() == Code::invalid) {
      s->error = "unknown schema id " + std::to_string(id) + ": " + status.message();
      s->retry_after = Clock::now() + kUnknownIdRetry;
    } else {
      check(status, "fetching schema id " + std::to_string(id));  // retriable: not remembered
      load(id, registered, *s);
    }
    if (last_id_ == id) last_schema_ = nullptr;  // the entry it points at is replaced
    Schema& entry = *s;
    schemas_[id] = std::move(s);
    return entry;
  }

  void load(std::int32_t id, const RegisteredSchema& registered, Schema& s) {
    if (!registered.schema_type.empty() && registered.schema_type != "PROTOBUF") {
      s.error =
          "schema id " + std::to_string(id) + " is " + registered.schema_type + ", not PROTOBUF";
      return;
    }
    try {
      s.files = SchemaFiles::from_registry(registered.schema, id, imports_.get());
    } catch (const std::exception& e) {
      s.error = e.what();
      return;
    }
    for (const auto& name : s.files->unresolved_imports())
      context_.warn("schema id " + std::to_string(id) + " imports " + name +
                    ", found neither among the well-known types nor in " + imports_path_ +
                    ": fields of its types decode as empty structs");
  }

  Context& context_;
  std::vector<std::string> projection_;
  DecodeLimits limits_;
  std::string imports_path_;
  std::unique_ptr<SchemaFiles> imports_;
  std::unordered_map<std::int32_t, std::unique_ptr<Schema>> schemas_;
  std::int32_t last_id_ = -1;
  Schema* last_schema_ = nullptr;
};

const char* const kEncodeExample = R"([[pipelines.transactions.transforms]]
plugin = "protobuf_encode"
message = "Transaction"
topic = "jagoTransactions")";

const char* const kDecodeExample = R"([[pipelines.totals.transforms]]
plugin = "protobuf_decode"
fields = ["account_number", "amount"])";

}  // namespace

PluginSpec plugin_spec() {
  PluginSpec p{
      "protobuf",
      "0.1.0",
      "Protobuf values in the Confluent Schema Registry wire format (magic byte, schema id, "
      "message-index path, message)",
      {}};
  const std::string default_set =
      "the data directory's proto/pipehost.desc, compiled from proto/*.proto";
  p.add_transform<ProtobufEncode>(
      "protobuf_encode",
      "Encodes each record's value (a struct) as a protobuf message into its payload, framed for "
      "the Schema Registry; registers the message's .proto file at start",
      {required_option(
           "message", OptionType::string,
           "message to write, by full name (\"pkg.Transaction\") or unique simple name"),
       optional_option(
           "topic", OptionType::string,
           "topic the records go to: the subject is \"<topic>-value\" (TopicNameStrategy); a "
           "record with a destination topic uses that topic's subject"),
       optional_option("subject", OptionType::string,
                       "subject to register under, overriding topic and destination topics"),
       optional_option("descriptor_set", OptionType::string,
                       "compiled descriptor set (protoc --include_imports) holding the message; "
                       "default: " +
                           default_set)},
      kEncodeExample);
  p.add_transform<ProtobufDecode>(
      "protobuf_decode",
      "Decodes each record's payload into its value (a struct), with the writer's schema fetched "
      "from the Schema Registry by the id in the framing",
      {optional_option("fields", OptionType::string_list,
                       "top-level fields to decode, the others are skipped (default: all)"),
       optional_option("descriptor_set", OptionType::string,
                       "descriptor set for imports other than google/protobuf/*.proto; default: " +
                           default_set + " when present"),
       with_range(option("max_record_bytes", OptionType::integer,
                         static_cast<std::int64_t>(DecodeLimits{}.max_bytes),
                         "a larger message is rejected (dead letter) instead of decoded"),
                  1, std::nullopt),
       with_range(option("max_elements", OptionType::integer,
                         static_cast<std::int64_t>(DecodeLimits{}.max_elements),
                         "a message with more list elements plus nested messages is rejected: "
                         "bounds the time and memory one hostile record can take"),
                  1, std::nullopt)},
      kDecodeExample);
  return p;
}

}  // namespace pipehost::protobuf
