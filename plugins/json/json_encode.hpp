// json_encode: each record's value written as JSON into its payload (structs as
// objects in field order, timestamps as RFC 3339 strings, bytes as base64).
#pragma once
#include <pipehost/json.hpp>
#include <pipehost/sdk.hpp>

namespace pipehost::json {

class JsonEncode final : public RecordTransform {
 public:
  using Config = NoOptions;
  JsonEncode(const Config&, Context&) {}
  Verdict apply(Record& record) override {
    std::string& out = record.payload.edit();
    out.clear();
    append(record.value, out);
    return Verdict::keep;
  }
};

}  // namespace pipehost::json
