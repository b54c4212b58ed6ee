// json_decode and json_encode through StageHarness: types kept, bad input rejected with
// the reason, round trips, and a catalogue of malformed payloads that must never crash.
#include <doctest/doctest.h>

#include <random>

#include <pipehost/testing.hpp>

#include "json_decode.hpp"
#include "json_encode.hpp"

using namespace pipehost;
using pipehost::testing::StageHarness;

namespace {

Batch of(std::vector<std::string> payloads) {
  Batch b;
  for (auto& p : payloads) b.records.emplace_back().payload = std::move(p);
  return b;
}

}  // namespace

TEST_CASE("json_decode: a trade becomes a struct, integers stay integers") {
  StageHarness<json::JsonDecode> h;
  Batch b = of({R"({"id":"T47654","version":73,"counter_party":"CP-12","book":"B34","expired":true,)"
                R"("matures_at":"2024-05-01T12:34:56.123456789Z","price":12.5,"tags":["a",null],"x":{"y":-3}})"});
  auto rejected = h.process(b);
  REQUIRE(rejected.empty());
  const Value& v = b.records[0].value;
  CHECK(*v.field("id") == Value("T47654"));
  CHECK(*v.field("version") == Value(std::int64_t{73}));
  CHECK(v.field("version")->is<std::int64_t>());
  CHECK(*v.field("expired") == Value(true));
  CHECK(*v.field("price") == Value(12.5));
  CHECK(*v.field("tags") == Value(List{Value("a"), Value()}));
  CHECK(*v.field("x")->field("y") == Value(std::int64_t{-3}));
  CHECK(v.as<Struct>()->schema->names().front() == "id");  // field order kept
}

TEST_CASE("json_decode: a UTF-8 byte-order mark before the object is passed over, as RFC 8259 allows") {
  StageHarness<json::JsonDecode> h;
  Batch b = of({"\xEF\xBB\xBF{\"id\":\"T1\",\"qty\":2}", "\xEF\xBB\xBF", "\xEF\xBB\xBF\xEF\xBB\xBF{}"});
  auto rejected = h.process(b);
  REQUIRE(rejected.size() == 2);  // a mark alone is no object; a second mark is not JSON
  CHECK(*b.records[0].value.field("id") == Value("T1"));
  CHECK(*b.records[0].value.field("qty") == Value(std::int64_t{2}));
}

TEST_CASE("json_decode: records alternating two key orders keep each order's schema, nested ones too") {
  StageHarness<json::JsonDecode> h;
  Batch b = of({R"({"a":1,"b":{"x":1,"y":2}})", R"({"b":{"y":3,"x":4},"a":2})", R"({"a":3,"b":{"x":5,"y":6}})",
                R"({"b":{"y":7,"x":8},"a":4})"});
  REQUIRE(h.process(b).empty());
  auto top = [&](std::size_t i) { return b.records[i].value.as<Struct>()->schema; };
  auto nested = [&](std::size_t i) { return b.records[i].value.field("b")->as<Struct>()->schema; };
  CHECK(top(0) == top(2));
  CHECK(top(1) == top(3));
  CHECK(top(0) != top(1));
  CHECK(top(1)->names() == std::vector<std::string>{"b", "a"});
  CHECK(nested(0) == nested(2));
  CHECK(nested(1) == nested(3));
  CHECK(nested(1)->names() == std::vector<std::string>{"y", "x"});
  CHECK(*b.records[3].value.field("a") == Value(std::int64_t{4}));
  CHECK(*b.records[3].value.field("b")->field("x") == Value(std::int64_t{8}));
}

TEST_CASE("json_decode: records of one shape share one schema; a projection skips the rest") {
  StageHarness<json::JsonDecode> h({{"fields", std::vector<std::string>{"id", "version"}}});
  Batch b = of({R"({"id":"a","version":1,"big":[1,2,3]})", R"({"version":2,"id":"b","zzz":{}})",
                R"({"id":"c","version":3})"});
  REQUIRE(h.process(b).empty());
  CHECK(b.records[0].value.as<Struct>()->fields.size() == 2);
  CHECK(b.records[0].value.as<Struct>()->schema == b.records[2].value.as<Struct>()->schema);
  CHECK(*b.records[1].value.field("id") == Value("b"));
}

TEST_CASE("json_decode: what is not a JSON object is rejected with the reason") {
  StageHarness<json::JsonDecode> h({{"max_depth", std::int64_t{3}}, {"max_record_bytes", std::int64_t{64}}});
  struct Case {
    std::string payload;
    const char* reason;
  };
  std::vector<Case> cases = {
      {"", "not valid JSON"},
      {"not json", "not a JSON object"},
      {"[1,2]", "not a JSON object"},
      {"\"text\"", "not a JSON object"},
      {"{\"a\":1", "does not end with '}' (cut short, or text after it)"},
      {"{\"a\":1} trailing", "does not end with '}' (cut short, or text after it)"},
      {"{\"a\":1,\"a\":2}", "duplicate key 'a'"},
      {"{\"a\":{\"b\":{\"c\":{\"d\":1}}}}", "nested deeper than max_depth"},
      {"{\"a\":\"\xff\xfe\"}", "not valid JSON"},
      {"{\"a\":18446744073709551615}", "an integer above 2^63-1"},
      {"{\"a\":-9223372036854775809}", "an integer below -2^63"},
      {"{\"a\":1e400}", "beyond a double's range"},
      {"{\"a\":01}", "not valid JSON"},
      {"{\"a\":\"" + std::string(100, 'x') + "\"}", "larger than max_record_bytes"},
      {"{\"a\":tru}", "not valid JSON"},
      {"{\"a\":nul}", "not valid JSON: a literal that is not null"},
      {"{\"a\":nullx}", "not valid JSON"},
      {"{\"a\":[n]}", "not valid JSON"},
      {"{\"a\":1}{\"b\":2}", "JSON"},
  };
  std::vector<std::string> payloads;
  for (const auto& c : cases) payloads.push_back(c.payload);
  Batch b = of(payloads);
  auto rejected = h.process(b);
  REQUIRE(rejected.size() == cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO(cases[i].payload << " -> " << rejected[i].reason);
    CHECK(rejected[i].reason.find(cases[i].reason) != std::string::npos);
  }
}

TEST_CASE("json_decode reads long numbers as strtod would (simdjson 3.0.1 misread those below 1)") {
  StageHarness<json::JsonDecode> h;
  const std::vector<std::pair<std::string, double>> cases = {
      {"0.33333333333333333333", 0.33333333333333333333},
      {"0.1000000000000000055511151231257827021181583404541015625", 0.1},
      {"0.99999999999999999999", 1.0},
      {"0.000123456789012345678901", 0.000123456789012345678901},
      {"-0.1000000000000000000000000", -0.1},
      {"123.45678901234567890123", 123.45678901234567890123},
      {"1.2345678901234567890e5", 123456.78901234567890},
      {"0.5", 0.5},
      {"0.5 \n                       ", 0.5},  // pretty-printed: whitespace before the next key
      {"0.33333333333333333333\n    ", 0.33333333333333333333},
      {"0.00000000000000000001e-400", 0.0},  // too small for a double: 0, as 1e-400 is
  };
  std::vector<std::string> payloads;
  for (const auto& [text, _] : cases) payloads.push_back("{\"a\":" + text + "}");
  Batch b = of(payloads);
  REQUIRE(h.process(b).empty());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO(cases[i].first);
    CHECK(*b.records[i].value.field("a") == Value(cases[i].second));
  }
}

TEST_CASE("json_encode then json_decode gives the same value back") {
  StageHarness<json::JsonEncode> encode;
  StageHarness<json::JsonDecode> decode;
  auto schema = StructSchema::make({"s", "i", "d", "b", "n", "l", "esc"});
  Batch b;
  b.records.emplace_back().value = Struct{
      schema, {Value("héllo"), Value(std::int64_t{-5}), Value(0.1), Value(false), Value(),
               Value(List{Value(std::int64_t{1}), Value("x")}), Value("q\"\\\n\t\x01")}};
  Value original = b.records[0].value;
  encode.process(b);
  CHECK(b.records[0].payload.view().find("\"s\":\"héllo\"") != std::string_view::npos);
  b.records[0].value = Value();
  REQUIRE(decode.process(b).empty());
  CHECK(b.records[0].value == original);
}

TEST_CASE("json_decode: mutated payloads are decoded or rejected, never a crash") {
  StageHarness<json::JsonDecode> h;
  const std::string seed = R"({"id":"T1","version":7,"nested":{"a":[1,2.5,"x",{"b":null}],"c":true}})";
  std::mt19937 random(7);
  int decoded = 0, rejected = 0;
  for (int round = 0; round < 5000; ++round) {
    std::string p = seed;
    for (int k = 0; k < 3; ++k) p[random() % p.size()] = static_cast<char>(random());
    Batch b = of({p});
    auto r = h.process(b);
    rejected += static_cast<int>(r.size());
    decoded += static_cast<int>(b.records.size());
    if (!r.empty()) CHECK(r[0].reason.rfind("json_decode: ", 0) == 0);
  }
  CHECK(decoded + rejected == 5000);
  CHECK(rejected > 1000);
}

TEST_CASE("json_encode: a double that happens to be whole stays a double when read back") {
  StageHarness<json::JsonEncode> enc;
  StageHarness<json::JsonDecode> dec;
  Batch b;
  auto schema = StructSchema::make({"d", "i", "e"});
  b.records.emplace_back().value =
      Struct{schema, {Value(-2500.0), Value(std::int64_t{-2500}), Value(1e300)}};
  REQUIRE(enc.process(b).empty());
  CHECK(std::string(b.records[0].payload) == R"({"d":-2500.0,"i":-2500,"e":1e+300})");
  const Value before = b.records[0].value;
  REQUIRE(dec.process(b).empty());
  CHECK(b.records[0].value == before);
  CHECK(b.records[0].value.field("d")->is<double>());
}

TEST_CASE("json_decode: an object with many keys is decoded, and a duplicate among them found") {
  // A duplicate check that compares each key with every earlier one makes a 1 MiB object
  // of short keys take seconds per record: it must stay linear.
  constexpr int kKeys = 60000;
  std::string many = "{";
  for (int i = 0; i < kKeys; ++i) many += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + std::to_string(i);
  std::string duplicated = many + ",\"k123\":0}";
  many += "}";
  StageHarness<json::JsonDecode> h({{"max_record_bytes", std::int64_t{2} << 20}});
  Batch b = of({many, duplicated, many});
  auto rejected = h.process(b);
  REQUIRE(rejected.size() == 1);
  CHECK(rejected[0].reason == "json_decode: duplicate key 'k123'");
  REQUIRE(b.records.size() == 2);
  for (const auto& r : b.records) {
    const Struct* s = r.value.as<Struct>();
    REQUIRE(s);
    CHECK(s->fields.size() == kKeys);
    CHECK(*r.value.field("k59999") == Value(std::int64_t{59999}));
  }
}

TEST_CASE("json_decode: recycled records of changing shapes decode as fresh ones") {
  // Each payload decoded into a fresh record and into the storage of an earlier record
  // (the host recycles batches): values, field names and rejections must be the same.
  const std::vector<std::string> payloads = {
      R"({"id":"T1","version":1,"book":"B1"})",
      R"({"id":"T2","version":2,"book":"B2"})",         // the same shape
      R"({"id":"T3","version":3})",                     // a prefix of it
      R"({"version":4,"id":"T4","book":"B4"})",         // its keys in another order
      R"({"id":"T5","version":5,"book":"B5","x":[1]})",  // one more
      R"({"id":"T6","version":6,"id":"again"})",        // the last shape's prefix, then a repeat
      R"({"id":7,"version":"seven","book":null})",      // other types in the same slots
      R"({"id":"T8","version":8,"book":"B8"})",
  };
  StageHarness<json::JsonDecode> fresh_h, recycled_h;
  Batch fresh = of(payloads);
  auto fresh_rejected = fresh_h.process(fresh);
  Batch recycled;
  recycled.capacity = 16;
  for (int round = 0; round < 3; ++round) {  // rounds 2 and 3 reuse storage, in another order
    for (std::size_t i = 0; i < payloads.size(); ++i)
      recycled.add().payload = payloads[round == 1 ? payloads.size() - 1 - i : i];
    auto rejected = recycled_h.process(recycled);
    if (round != 1) {
      REQUIRE(rejected.size() == fresh_rejected.size());
      CHECK(rejected[0].reason == fresh_rejected[0].reason);
      REQUIRE(recycled.records.size() == fresh.records.size());
      for (std::size_t i = 0; i < fresh.records.size(); ++i) {
        CHECK(recycled.records[i].value == fresh.records[i].value);
        CHECK(recycled.records[i].value.as<Struct>()->schema->names() ==
              fresh.records[i].value.as<Struct>()->schema->names());
      }
    }
    recycled.recycle();
  }
  CHECK(fresh_rejected[0].reason == "json_decode: duplicate key 'id'");
}
