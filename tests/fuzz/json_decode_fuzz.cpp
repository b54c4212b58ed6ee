// json_decode over arbitrary payloads, as the host runs it (StageHarness): a payload is
// either decoded or rejected with a reason, never anything else. What it decodes must
// survive json_encode and json_decode again unchanged.
#include <cstdint>
#include <string>

#include <pipehost/testing.hpp>

#include "fuzz_support.hpp"
#include "json_decode.hpp"
#include "json_encode.hpp"

using namespace pipehost;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static testing::StageHarness<json::JsonDecode> decode({{"max_record_bytes", std::int64_t{1 << 16}}});
  static testing::StageHarness<json::JsonEncode> encode;
  Batch batch;
  batch.records.emplace_back().payload = std::string(reinterpret_cast<const char*>(data), size);
  std::vector<Rejection> rejected;
  try {
    rejected = decode.process(batch);
  } catch (...) {
    fuzz::undocumented_exception("json_decode");
  }
  FUZZ_CHECK(rejected.size() + batch.records.size() == 1);
  if (batch.records.empty()) {
    FUZZ_CHECK(!rejected[0].reason.empty());
    return 0;
  }
  const Value first = batch.records[0].value;
  FUZZ_CHECK(first.is<Struct>());
  try {
    FUZZ_CHECK(encode.process(batch).empty());
    FUZZ_CHECK(decode.process(batch).empty());
  } catch (...) {
    fuzz::undocumented_exception("json_encode then json_decode");
  }
  FUZZ_CHECK(batch.records.size() == 1 && batch.records[0].value == first);
  return 0;
}
