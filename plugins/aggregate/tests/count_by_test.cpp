#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include <pipehost/testing.hpp>

#include "count_by.hpp"

using namespace pipehost;
using pipehost::testing::StageHarness;

namespace {
Record food(Value name, Value amount = Value()) {
  static const auto schema = StructSchema::make({"food", "grams"});
  Record r;
  r.value = Struct{schema, {std::move(name), std::move(amount)}};
  return r;
}
}  // namespace

TEST_CASE("count_by: one record per value with its count; spans untouched") {
  StageHarness<aggregate::CountBy> h({{"group_by", std::string("food")}});
  Batch b;
  for (const char* f : {"mayo", "butter", "mayo", "mayo"}) b.records.push_back(food(Value(f)));
  b.records.push_back(food(Value()));
  b.records.push_back(food(Value(std::int64_t{3})));
  b.spans = {{"message", 0, 10, 16}};
  auto rejected = h.process(b);
  REQUIRE(rejected.size() == 1);
  CHECK(rejected[0].reason == "count_by: field 'food' is missing");
  REQUIRE(b.records.size() == 3);
  CHECK(*b.records[0].value.field("food") == Value("mayo"));
  CHECK(*b.records[0].value.field("count") == Value(std::int64_t{3}));
  CHECK(*b.records[1].value.field("food") == Value("butter"));
  CHECK(*b.records[2].value.field("food") == Value(std::int64_t{3}));  // kept as it was
  CHECK(b.spans.at(0).next == 16);
}

// Grouped by text alone, the int 1 and the string "1" (or true and "true") were one group
// keeping the first one's kind.
TEST_CASE("count_by: values of different kinds with the same text are different keys") {
  StageHarness<aggregate::CountBy> h({{"group_by", std::string("food")}});
  Batch b;
  b.records.push_back(food(Value(std::int64_t{1})));
  b.records.push_back(food(Value("1")));
  b.records.push_back(food(Value(std::int64_t{1})));
  b.records.push_back(food(Value(true)));
  b.records.push_back(food(Value("true")));
  REQUIRE(h.process(b).empty());
  REQUIRE(b.records.size() == 4);
  CHECK(*b.records[0].value.field("food") == Value(std::int64_t{1}));
  CHECK(*b.records[0].value.field("count") == Value(std::int64_t{2}));
  CHECK(*b.records[1].value.field("food") == Value("1"));
  CHECK(*b.records[1].value.field("count") == Value(std::int64_t{1}));
  CHECK(*b.records[2].value.field("food") == Value(true));
  CHECK(*b.records[3].value.field("food") == Value("true"));
}

TEST_CASE("count_by: sums a field instead, integers exactly") {
  StageHarness<aggregate::CountBy> h(
      {{"group_by", std::string("food")}, {"sum_field", std::string("grams")}, {"as", std::string("total")}});
  Batch b;
  b.records.push_back(food(Value("rice"), Value(std::int64_t{100})));
  b.records.push_back(food(Value("rice"), Value(std::int64_t{250})));
  b.records.push_back(food(Value("rice"), Value("heavy")));
  auto rejected = h.process(b);
  REQUIRE(rejected.size() == 1);
  REQUIRE(b.records.size() == 1);
  CHECK(*b.records[0].value.field("total") == Value(std::int64_t{350}));
}

TEST_CASE("count_by: a sum that would overflow, or is not finite, rejects the record that did it") {
  StageHarness<aggregate::CountBy> h({{"group_by", std::string("food")}, {"sum_field", std::string("grams")}});
  Batch b;
  const std::int64_t big = std::numeric_limits<std::int64_t>::max();
  b.records.push_back(food(Value("rice"), Value(big)));
  b.records.push_back(food(Value("rice"), Value(big)));                 // would wrap
  b.records.push_back(food(Value("rice"), Value(std::int64_t{-1})));
  b.records.push_back(food(Value("oats"), Value(std::nan(""))));
  b.records.push_back(food(Value("oats"), Value(2.5)));
  auto rejected = h.process(b);
  REQUIRE(rejected.size() == 2);
  CHECK(rejected[0].reason.find("would pass the largest number a total can hold") != std::string::npos);
  CHECK(rejected[1].reason == "count_by: field 'grams' is not a finite number");
  REQUIRE(b.records.size() == 2);
  CHECK(*b.records[0].value.field("count") == Value(big - 1));
  CHECK(*b.records[1].value.field("count") == Value(2.5));
}

TEST_CASE("count_by: `as` naming the group_by field is a config problem") {
  testing::TestContext context;
  testing::TestChecker checker(context, false);
  aggregate::CountByConfig config;
  config.group_by = "count";  // grouping by a field named like the default `as`
  config.check(checker);
  REQUIRE(checker.problems.size() == 1);
  CHECK(checker.problems[0].find("option 'as': as = \"count\" is also group_by's name") == 0);
  config.as = "times";
  checker.problems.clear();
  config.check(checker);
  CHECK(checker.problems.empty());
}
