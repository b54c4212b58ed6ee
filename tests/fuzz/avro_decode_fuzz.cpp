// avro_decode over arbitrary Avro bodies framed for one of a few registered schemas (the
// first input byte picks it): decoded or rejected with a reason, never anything else,
// and in bounded time and memory. What it decodes must survive avro_encode and
// avro_decode again unchanged.
#include <cstdint>
#include <string>
#include <vector>

#include <pipehost/testing.hpp>

#include "avro_decode.hpp"
#include "avro_encode.hpp"
#include "confluent_frame.hpp"
#include "fuzz_support.hpp"

using namespace pipehost;

namespace {

// The seed's schemas and every kind of Avro type, recursion and zero-size items included.
const std::vector<std::string> kSchemas = {
    R"({"type":"record","name":"ProducerToProcessor","namespace":"service_messages","fields":[
      {"name":"origin_service_id","type":"string"},{"name":"origin_service_type","type":"string"},
      {"name":"destination_service_type","type":"string"},
      {"name":"event_timestamp","type":"long","logicalType":"timestamp-millis"},
      {"name":"payload","type":"string"}]})",
    R"({"type":"record","name":"All","fields":[
      {"name":"n","type":"null"},{"name":"b","type":"boolean"},{"name":"i","type":"int"},
      {"name":"l","type":"long"},{"name":"f","type":"float"},{"name":"d","type":"double"},
      {"name":"by","type":"bytes"},{"name":"s","type":"string"},
      {"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN","BLUE"]}},
      {"name":"fx","type":{"type":"fixed","name":"Four","size":4}},
      {"name":"a","type":{"type":"array","items":"long"}},
      {"name":"m","type":{"type":"map","values":["null","string"]}},
      {"name":"u","type":["null","string","long"]}]})",
    R"({"type":"record","name":"Node","fields":[{"name":"v","type":"int"},
      {"name":"next","type":["null","Node"]},{"name":"kids","type":{"type":"array","items":"Node"}}]})",
    R"({"type":"array","items":"null"})",
    R"({"type":"map","values":{"type":"array","items":{"type":"record","name":"E","fields":[]}}})",
};

struct Setup {
  testing::StageHarness<avro::AvroDecode> decode{{{"max_elements", std::int64_t{100000}}}};
  std::vector<int> ids;
  std::vector<std::unique_ptr<testing::StageHarness<avro::AvroEncode>>> encoders;
  Setup() {
    for (std::size_t i = 0; i < kSchemas.size(); ++i) {
      int id = -1;
      const std::string subject = "s" + std::to_string(i) + "-value";
      (void)decode.context.registry.register_schema(subject, "AVRO", kSchemas[i], id);
      ids.push_back(id);
      auto enc = std::make_unique<testing::StageHarness<avro::AvroEncode>>(
          std::map<std::string, OptionValue>{{"subject", subject}},
          [&](testing::TestContext& c) {  // every schema, in order: the ids are the decoder's
            for (std::size_t j = 0; j < kSchemas.size(); ++j) {
              int same = -1;
              (void)c.registry.register_schema("s" + std::to_string(j) + "-value", "AVRO", kSchemas[j], same);
            }
          });
      (*enc)->start();
      encoders.push_back(std::move(enc));
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Setup setup;
  if (size == 0) return 0;
  const std::size_t which = data[0] % kSchemas.size();
  std::string payload;
  avro::write_frame_header(payload, setup.ids[which]);
  payload.append(reinterpret_cast<const char*>(data + 1), size - 1);
  Batch batch;
  batch.records.emplace_back().payload = payload;
  std::vector<Rejection> rejected;
  try {
    rejected = setup.decode.process(batch);
  } catch (...) {
    fuzz::undocumented_exception("avro_decode");
  }
  FUZZ_CHECK(rejected.size() + batch.records.size() == 1);
  if (batch.records.empty()) {
    FUZZ_CHECK(!rejected[0].reason.empty());
    return 0;
  }
  const Value first = batch.records[0].value;
  try {
    FUZZ_CHECK(setup.encoders[which]->process(batch).empty());
    FUZZ_CHECK(setup.decode.process(batch).empty());
  } catch (...) {
    fuzz::undocumented_exception("avro_encode then avro_decode");
  }
  FUZZ_CHECK(batch.records.size() == 1);
  const Value& second = batch.records[0].value;
  // NaN is not equal to itself: compare the encodings instead when floats are involved.
  if (!(second == first)) {
    std::string again = std::string(batch.records[0].payload);
    FUZZ_CHECK(setup.encoders[which]->process(batch).empty());
    FUZZ_CHECK(std::string(batch.records[0].payload) == again);
  }
  return 0;
}
