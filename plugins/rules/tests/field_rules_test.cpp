#include <doctest/doctest.h>

#include <cmath>

#include <pipehost/testing.hpp>
#include <pipehost/utf8.hpp>

#include "field_rules.hpp"

using namespace pipehost;
using pipehost::testing::StageHarness;

namespace {

const std::map<std::string, OptionValue> kTradeRules = {
    {"required", std::vector<std::string>{"id", "version", "counter_party", "book", "expired",
                                          "matures_at", "created_at"}},
    {"types", StringMap{{"version", "integer"}, {"expired", "boolean"},
                        {"matures_at", "timestamp"}, {"created_at", "timestamp"}}},
    {"patterns", StringMap{{"id", "T[0-9]+"}, {"counter_party", "CP-[0-9]+"}, {"book", "B[0-9]+"}}},
    {"minimum", StringMap{{"version", "0"}}},
    {"maximum", StringMap{{"version", "99"}}},
};

Record trade(Value id, Value version, Value matures = Value("2030-01-01T00:00:00.123456789Z")) {
  static const auto schema = StructSchema::make(
      {"id", "version", "counter_party", "book", "expired", "matures_at", "created_at"});
  Record r;
  r.value = Struct{schema, {std::move(id), std::move(version), Value("CP-1"), Value("B2"), Value(false),
                            std::move(matures), Value("2024-01-01T00:00:00Z")}};
  return r;
}

}  // namespace

TEST_CASE("field_rules: a valid trade passes; each broken rule is named") {
  StageHarness<rules::FieldRules> h(kTradeRules);
  Batch b;
  b.records.push_back(trade(Value("T47654"), Value(std::int64_t{73})));
  b.records.push_back(trade(Value("X1"), Value(std::int64_t{1})));
  b.records.push_back(trade(Value("T1"), Value(std::int64_t{-1})));
  b.records.push_back(trade(Value("T1"), Value("73")));
  b.records.push_back(trade(Value(), Value(std::int64_t{1})));
  b.records.push_back(trade(Value("T1"), Value(std::int64_t{100})));
  b.records.push_back(trade(Value("T1"), Value(std::int64_t{1}), Value("yesterday")));
  b.records.push_back(trade(Value(std::int64_t{5}), Value(std::int64_t{1})));
  auto rejected = h.process(b);
  REQUIRE(b.records.size() == 1);
  CHECK(*b.records[0].value.field("id") == Value("T47654"));
  REQUIRE(rejected.size() == 7);
  CHECK(rejected[6].reason == "field_rules: field 'id' is 5, not a string: a pattern matches strings");
  CHECK(rejected[0].reason == "field_rules: field 'id' is \"X1\", which does not match T[0-9]+");
  CHECK(rejected[1].reason == "field_rules: field 'version' is -1, below the minimum 0");
  CHECK(rejected[2].reason == "field_rules: field 'version' is \"73\", not an integer");
  CHECK(rejected[3].reason == "field_rules: field 'id' is null");
  CHECK(rejected[4].reason == "field_rules: field 'version' is 100, above the maximum 99");
  CHECK(rejected[5].reason == "field_rules: field 'matures_at' is \"yesterday\", not a timestamp");
}

TEST_CASE("field_rules: nested paths and allowed values") {
  StageHarness<rules::FieldRules> h({{"one_of", StringMap{{"order.side", "buy, sell"}}}});
  auto inner = StructSchema::make({"side"});
  auto outer = StructSchema::make({"order"});
  Batch b;
  b.records.emplace_back().value = Struct{outer, {Value(Struct{inner, {Value("buy")}})}};
  b.records.emplace_back().value = Struct{outer, {Value(Struct{inner, {Value("hold")}})}};
  auto rejected = h.process(b);
  REQUIRE(rejected.size() == 1);
  CHECK(rejected[0].reason == "field_rules: field 'order.side' is \"hold\", not one of the allowed values");
}

TEST_CASE("field_rules: bad rules are reported at validate") {
  using H = StageHarness<rules::FieldRules>;
  CHECK(H::problems({{"types", StringMap{{"a", "date"}}}}).at(0).find("has type 'date'") != std::string::npos);
  CHECK(H::problems({{"patterns", StringMap{{"a", "("}}}}).at(0).find("not a regular expression") != std::string::npos);
  CHECK(H::problems({{"minimum", StringMap{{"a", "zero"}}}}).at(0).find("not a finite number") != std::string::npos);
  CHECK(H::problems({}).at(0).find("no rules") != std::string::npos);
}

TEST_CASE("field_rules: a huge string is matched against a pattern without a crash") {
  // std::regex recursed once per character: a 50 KB id overflowed the thread's stack.
  StageHarness<rules::FieldRules> h(kTradeRules);
  Batch b;
  b.records.push_back(trade(Value("T" + std::string(4 << 20, '7')), Value(std::int64_t{1})));
  b.records.push_back(trade(Value("T" + std::string(4 << 20, '7') + "x"), Value(std::int64_t{1})));
  auto rejected = h.process(b);
  REQUIRE(rejected.size() == 1);
  CHECK(rejected[0].reason.find("which does not match T[0-9]+") != std::string::npos);
  CHECK(rejected[0].reason.size() < 200);
  REQUIRE(b.records.size() == 1);
  CHECK(b.records[0].value.field("id")->as<std::string>()->size() == (4u << 20) + 1);
}

TEST_CASE("field_rules: a pattern RE2 cannot run is reported at validate, naming RE2") {
  using H = StageHarness<rules::FieldRules>;
  auto problems = H::problems({{"patterns", StringMap{{"id", "T(?=[0-9])"}}}});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("field 'id'") != std::string::npos);
  CHECK(problems[0].find("RE2") != std::string::npos);
}

TEST_CASE("field_rules: NaN is outside every range") {
  StageHarness<rules::FieldRules> h({{"minimum", StringMap{{"version", "0"}}}});
  Batch b;
  b.records.push_back(trade(Value("T1"), Value(std::nan(""))));
  b.records.push_back(trade(Value("T2"), Value(1.5)));
  auto rejected = h.process(b);
  REQUIRE(rejected.size() == 1);
  CHECK(rejected[0].reason.find("not a finite number") != std::string::npos);
  CHECK(b.records.size() == 1);
}

// A value inside a reason: a NUL ended the reason where it passed as a C string, a cut
// inside a character made the dead-letter header and the JSON log line invalid UTF-8.
TEST_CASE("field_rules: a value in a reason is escaped and cut between characters") {
  StageHarness<rules::FieldRules> h(kTradeRules);
  Batch b;
  b.records.push_back(trade(Value(std::string("T1\0x", 4)), Value(std::int64_t{1})));
  std::string accents;
  for (int i = 0; i < 30; ++i) accents += "\xc3\xa9";  // é
  b.records.push_back(trade(Value("a" + accents), Value(std::int64_t{1})));
  auto rejected = h.process(b);
  REQUIRE(rejected.size() == 2);
  CHECK(rejected[0].reason.find(R"(field 'id' is "T1\u0000x", which does not match)") != std::string::npos);
  CHECK(utf8::valid(rejected[1].reason));
  CHECK(rejected[1].reason.find("\"a\xc3\xa9\xc3\xa9") != std::string::npos);
  CHECK(rejected[1].reason.find("...\", which does not match") != std::string::npos);
}
