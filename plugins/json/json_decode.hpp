// json_decode: each record's payload, a JSON object, decoded into its value (a struct)
// with simdjson's On-Demand parser. Integers stay integers, other numbers are doubles;
// strings are checked UTF-8 by simdjson; nesting and size are bounded. A payload that is
// not JSON, not an object, too deep, too large or has a duplicate key is rejected with
// the reason (dead letter), never a crash.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <pipehost/sdk.hpp>

namespace pipehost::json {

struct JsonDecodeConfig {
  std::vector<std::string> fields;
  std::int64_t max_record_bytes = 1 << 20;
  int max_depth = 64;

  static void declare(OptionList<JsonDecodeConfig>& o);
};

class JsonDecode final : public Transform {
 public:
  using Config = JsonDecodeConfig;
  JsonDecode(const Config& config, Context& context);
  ~JsonDecode() override;
  void process(Batch& batch) override;

 private:
  struct Parser;
  std::unique_ptr<Parser> parser_;
  Counter& decoded_;
};

}  // namespace pipehost::json
