// router: picks each record's destination topic (and Schema Registry subject) by the value
// of one field, and reshapes its value for the destination — a per-tenant fan-out
// declared in config, so another tenant layout needs no code:
//
//   plugin = "router"
//   field = "destination_service_type"
//   topics = { FINANCE = "processor.to.finance", MARKETING = "processor.to.marketing" }
//   subjects = { FINANCE = "processor.to.consumer-value", MARKETING = "processor.to.consumer-value" }
//   fields = { producer_service_id = "origin_service_id", payload = "payload" }
//   constants = { processor_service_id = "event-processor-1" }
//   now_ms = ["processor_event_timestamp"]
//
// A record whose field names no destination is rejected (dead letter) with the reason.
// The key is kept. The subject travels to the encoder in the header pipehost.subject.
#pragma once
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <pipehost/sdk.hpp>
#include <pipehost/subject_header.hpp>

namespace pipehost::router {

struct RouterConfig {
  std::string field;
  StringMap topics;
  StringMap subjects;
  StringMap fields;
  StringMap constants;
  std::vector<std::string> now_ms;

  static void declare(OptionList<RouterConfig>& o);
  void check(Checker& c) const;
};

class Router final : public RecordTransform {
 public:
  using Config = RouterConfig;
  Router(const Config& config, Context& context);
  Verdict apply(Record& record) override;

 private:
  struct Destination {
    std::string name;  // the field's value
    std::string topic;
    std::string subject;  // empty: no subject header
    Counter* routed = nullptr;
  };
  struct Copy {
    std::string from;
    std::size_t to;     // index in the output struct
    bool only = false;  // the only copy of its input field: moved, not copied
  };

  const Destination* find(std::string_view name) const;
  void reshape(Value& in);  // in place: the input's storage becomes the output's
  const std::vector<std::size_t>& sources(const Struct& in);

  FieldReader field_reader_;  // field_, its index remembered per input shape
  std::string field_;
  std::vector<Destination> destinations_;
  // By name: a router of thousands of tenants looked each record's up one by one.
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::size_t, NameHash, std::equal_to<>> by_name_;
  std::string known_;  // "FINANCE, MARKETING" for messages (the first few, and how many)
  bool reshape_ = false;
  std::shared_ptr<const StructSchema> schema_;
  std::vector<Copy> copies_;
  std::vector<std::pair<std::size_t, std::string>> constants_;
  std::vector<std::size_t> now_fields_;
  // copies_[i] comes from input field sources_[i] of input_schema_'s shape (held: its
  // address cannot be reused by another shape).
  std::shared_ptr<const StructSchema> input_schema_;
  std::vector<std::size_t> sources_;
  std::vector<Value> moved_;  // the copied fields while the output is laid out
};

}  // namespace pipehost::router
