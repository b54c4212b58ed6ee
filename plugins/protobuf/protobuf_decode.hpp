// protobuf_decode: each record's payload (Confluent framing) decoded into its value, a
// struct, with the writer's schema fetched from the Schema Registry by the frame's id.
#pragma once
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <pipehost/schema_references.hpp>
#include <pipehost/sdk.hpp>

#include "framing.hpp"
#include "schema_loader.hpp"
#include "wire_decoder.hpp"

namespace pipehost::protobuf {

struct ProtobufDecodeConfig {
  std::vector<std::string> fields;
  std::optional<std::string> descriptor_set;
  std::int64_t max_record_bytes = static_cast<std::int64_t>(DecodeLimits{}.max_bytes);
  std::int64_t max_elements = static_cast<std::int64_t>(DecodeLimits{}.max_elements);

  static void declare(OptionList<ProtobufDecodeConfig>& o);
  void check(Checker& c) const;
};

namespace gp = google::protobuf;

class ProtobufDecode final : public RecordTransform {
 public:
  using Config = ProtobufDecodeConfig;
  ProtobufDecode(const Config& config, Context& context) : context_(context) {
    projection_ = config.fields;
    limits_.max_bytes = static_cast<std::size_t>(config.max_record_bytes);
    limits_.max_elements = static_cast<std::uint64_t>(config.max_elements);
    imports_path_ = config.descriptor_set.value_or(context.data_dir() + "/proto/pipehost.desc");
    // Only for imports that are not well-known types; the default set may be absent.
    if (config.descriptor_set || std::filesystem::exists(imports_path_))
      imports_ = SchemaFiles::from_descriptor_set(imports_path_);
  }

  Verdict apply(Record& record) override {
    if (record.payload.is_null()) throw InvalidRecord("null value (a tombstone): there is nothing to decode");
    FrameHeader header;
    try {
      header = parse_frame(record.payload);
    } catch (const InvalidRecord&) {
      // A schema id read but no message-index path: another format's record (Avro, JSON
      // Schema) reads as garbage indexes, and its schema says what it is. Only a schema
      // the registry gave (an id it does not know, or a registry not answering, leaves
      // the framing's reason: the bytes may not be Confluent's at all).
      std::string unusable;
      if (const std::int32_t id = frame_schema_id(record.payload); id > 0) {
        try {
          if (const Schema& s = schema_for(id); !s.error.empty() && s.retry_after == kNever) unusable = s.error;
        } catch (...) {
        }
      }
      if (!unusable.empty()) throw InvalidRecord(unusable);
      throw;
    }
    const DecodePlan& plan = plan_for(header);
    decode_message(plan, std::string_view(record.payload).substr(header.size),
                   record.value_to_overwrite(), limits_);
    return Verdict::keep;
  }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kNever = Clock::time_point::max();

  struct Schema {
    explicit Schema(const std::vector<std::string>& projection) : plans(projection) {}
    std::unique_ptr<SchemaFiles> files;
    DecodePlans plans;
    std::vector<std::pair<MessagePath, const DecodePlan*>> by_path;
    std::string error;  // a schema that cannot be used, remembered so it is asked for once
    std::set<std::string> projection_warned;  // message paths the projection does not fit
    // An id the registry did not know is asked for again after a while (a registry that
    // lags behind its producers), not for every record that carries it.
    Clock::time_point retry_after = kNever;
  };

  Schema& schema_for(std::int32_t id) {
    if (id != last_id_ || !last_schema_ || last_schema_->retry_after != kNever) {
      last_schema_ = &schema(id);
      last_id_ = id;
    }
    return *last_schema_;
  }

  const DecodePlan& plan_for(const FrameHeader& header) {
    Schema& s = schema_for(header.schema_id);
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
    } catch (const std::invalid_argument& e) {
      // The projection does not fit the message this record's frame names. The frame is
      // the record's (another message of the file, another topic's schema id), so the
      // record is rejected under on_error; said once per message, as it may be a typo.
      const std::string what = std::string(e.what()) + " (schema id " + std::to_string(header.schema_id) +
                               ", message index path " + header.path.to_string() + ")";
      if (s.projection_warned.insert(header.path.to_string()).second) context_.warn("protobuf_decode: " + what);
      throw InvalidRecord(what);
    } catch (const std::runtime_error& e) {
      throw InvalidRecord("schema id " + std::to_string(header.schema_id) + ": " + e.what());
    }
    s.by_path.emplace_back(header.path, plan);
    return *plan;
  }

  Schema& schema(std::int32_t id) {
    auto it = schemas_.find(id);
    if (it != schemas_.end() && it->second->retry_after > Clock::now()) return *it->second;
    auto s = std::make_unique<Schema>(projection_);
    RegisteredSchema registered;
    std::vector<ReferencedSchema> references;
    s->error = unknown_budget_.fetch(context_.schema_registry(), id, "import", is_well_known_file, registered,
                                     references, s->retry_after);
    if (s->error.empty()) {
      SchemaFiles::ReferencedFiles referenced;
      for (ReferencedSchema& r : references) referenced[r.name] = std::move(r.schema);
      load(id, registered, referenced, *s);
    }
    if (last_id_ == id) last_schema_ = nullptr;  // the entry it points at is replaced
    if (s->error.empty() && it == schemas_.end() && ++known_ids_ > kMostSchemas) {
      // A parsed schema holds its own descriptor pool (~19 KB): thousands of ids (a
      // subject per tenant) would grow each task without bound. Forgotten all at once: one
      // parse per id again (the registry's answers are cached in the process), and
      // decoded values hold their StructSchema themselves.
      schemas_.clear();
      last_schema_ = nullptr;
      known_ids_ = 1;
      unknown_ids_ = 0;
    }
    if (!s->error.empty() && ++unknown_ids_ > kMostUnknownIds) {
      // Records with ever-new ids (garbage framing) must not grow the cache without bound.
      std::erase_if(schemas_, [](const auto& e) { return !e.second->error.empty(); });
      last_schema_ = nullptr;
      unknown_ids_ = 1;
    }
    Schema& entry = *s;
    schemas_[id] = std::move(s);
    return entry;
  }

  void load(std::int32_t id, const RegisteredSchema& registered,
            const SchemaFiles::ReferencedFiles& referenced, Schema& s) {
    if (!registered.schema_type.empty() && registered.schema_type != "PROTOBUF") {
      s.error =
          "schema id " + std::to_string(id) + " is " + registered.schema_type +
          ", not PROTOBUF: the record was written in another format (decode it with " +
          (registered.schema_type == "AVRO" ? "avro_decode" : "json_decode") + ")";
      return;
    }
    try {
      s.files = SchemaFiles::from_registry(registered.schema, id, imports_.get(), &referenced);
    } catch (const std::exception& e) {
      s.error = e.what();
      return;
    }
    for (const auto& name : s.files->unresolved_imports())
      context_.warn("schema id " + std::to_string(id) + " imports " + name +
                    ", found neither among the well-known types, its references nor in " + imports_path_ +
                    ": records with fields of its types are refused (options from it are ignored)");
  }

  Context& context_;
  std::vector<std::string> projection_;
  DecodeLimits limits_;
  std::string imports_path_;
  std::unique_ptr<SchemaFiles> imports_;
  std::unordered_map<std::int32_t, std::unique_ptr<Schema>> schemas_;
  std::int32_t last_id_ = -1;
  Schema* last_schema_ = nullptr;
  std::size_t unknown_ids_ = 0;  // error entries added since the cache last forgot them
  std::size_t known_ids_ = 0;    // parsed entries added since the cache last forgot them
  UnknownIdBudget unknown_budget_;
  static constexpr std::size_t kMostUnknownIds = 1024;

 public:
  static constexpr std::size_t kMostSchemas = 1024;
  std::size_t schemas_cached() const { return schemas_.size(); }
};


}  // namespace pipehost::protobuf
