// avro_encode: each record's value written as Avro binary into its payload, framed for the
// Schema Registry (magic 0, 4-byte schema id). The schema is the latest version of the
// record's subject (what the seed's clients do at start-up) or, with schema_file, that
// file's schema registered under the subject when it is not there yet.
//
// The subject of a record: the header `pipehost.subject` when a stage before set one (the
// router does; the header is removed here), else the option subject, else
// "<destination topic>-value", else "<topic>-value".
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include <pipehost/sdk.hpp>
#include <pipehost/subject_header.hpp>

#include "avro_value.hpp"

namespace pipehost::avro {

struct AvroEncodeConfig {
  std::optional<std::string> subject;
  std::optional<std::string> topic;
  std::optional<std::string> schema_file;

  static void declare(OptionList<AvroEncodeConfig>& o);
  void check(Checker& c) const;
};

class AvroEncode final : public RecordTransform {
 public:
  using Config = AvroEncodeConfig;
  AvroEncode(const Config& config, Context& context);
  ~AvroEncode() override;
  void start() override;
  Verdict apply(Record& record) override;

 private:
  struct Target;  // one subject: its schema id and a value of its schema to fill

  Target& target(const Record& record, std::string_view from_header);
  std::unique_ptr<Target> resolve(const std::string& subject);

  Context& context_;
  std::string schema_text_;  // from schema_file; empty: each subject's latest version
  bool explicit_subject_ = false;
  std::string default_subject_;
  std::unordered_map<std::string, std::unique_ptr<Target>> targets_;
  std::string last_subject_;
  Target* last_ = nullptr;
  FromValue from_value_;
  std::size_t last_size_ = 0;  // the last record's Avro bytes
};

}  // namespace pipehost::avro
