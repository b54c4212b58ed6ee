// avro_decode: each record's payload (Confluent framing: magic 0, 4-byte schema id, Avro
// binary) decoded into its value, with the writer's schema fetched from the Schema
// Registry by the frame's id and cached. With reader_schema_file the value is read as
// that schema by Avro C's schema resolution: fields the reader lacks are skipped,
// promotions (int -> long -> float -> double) and unions resolve. A reader field the
// writer lacks takes its default (Avro C 1.11 refuses those: it reads without them, and
// they are filled after); one without a default makes the writer's values rejected.
#pragma once
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include <pipehost/schema_references.hpp>
#include <pipehost/sdk.hpp>

#include "avro_value.hpp"
#include "binary_check.hpp"

namespace pipehost::avro {

struct AvroDecodeConfig {
  std::optional<std::string> reader_schema_file;
  std::int64_t max_record_bytes = 16 * 1024 * 1024;
  std::int64_t max_elements = static_cast<std::int64_t>(BinaryLimits{}.max_elements);

  static void declare(OptionList<AvroDecodeConfig>& o);
  void check(Checker& c) const;
};

class AvroDecode final : public RecordTransform {
 public:
  using Config = AvroDecodeConfig;
  AvroDecode(const Config& config, Context& context);
  ~AvroDecode() override;
  Verdict apply(Record& record) override;

 private:
  using Clock = std::chrono::steady_clock;
  struct Writer;  // one writer schema, ready to read values of it

  Writer& writer(std::int32_t id);
  void load(std::int32_t id, const RegisteredSchema& registered,
            const std::vector<ReferencedSchema>& referenced, Writer& w);
  void plan_defaults(const std::set<std::pair<std::string, std::string>>& fields, Writer& w) const;
  static void fill_defaults(const Writer& w, Value& v);

  Context& context_;
  Schema reader_schema_;  // empty: values are read as the writer wrote them
  SchemaNotes reader_notes_;
  std::string reader_schema_file_;
  std::size_t max_record_bytes_;
  BinaryLimits limits_;
  avro_reader_t reader_ = nullptr;
  ToValue to_value_;
  std::unordered_map<std::int32_t, std::unique_ptr<Writer>> writers_;
  std::int32_t last_id_ = -1;
  Writer* last_ = nullptr;
  std::size_t unknown_ids_ = 0;  // error entries added since the cache last forgot them
  std::size_t known_ids_ = 0;    // parsed entries added since the cache last forgot them
  UnknownIdBudget unknown_budget_;
  static constexpr std::size_t kMostUnknownIds = 1024;

 public:
  static constexpr std::size_t kMostSchemas = 1024;
  std::size_t schemas_cached() const { return writers_.size(); }
};

// Reads a whole .avsc file and parses it (and its logical types into `notes`); throws
// std::runtime_error naming the file.
Schema load_schema_file(const std::string& path, SchemaNotes* notes = nullptr);

}  // namespace pipehost::avro
