// The plugin's tests: StageHarness validates options and builds the component exactly
// as the host does, without a broker.
#include <doctest/doctest.h>

#include <pipehost/testing.hpp>

#include "shout.hpp"

using pipehost::testing::StageHarness;

TEST_CASE("shout upper-cases the field and rejects records without it") {
  StageHarness<hello::Shout> h({{"field", std::string("name")}, {"times", std::int64_t{2}}});
  pipehost::Batch batch;
  auto schema = pipehost::StructSchema::make({"name"});
  batch.records.emplace_back().value = pipehost::Struct{schema, {pipehost::Value("ada")}};
  batch.records.emplace_back();  // no decoded value
  auto rejected = h.process(batch);
  REQUIRE(batch.records.size() == 1);
  CHECK(*batch.records[0].value.field("name") == pipehost::Value("ADA!!"));
  REQUIRE(rejected.size() == 1);
  CHECK(rejected[0].reason == "field 'name' is not a string");
}

TEST_CASE("options are validated as pipehost validate does") {
  using H = StageHarness<hello::Shout>;
  CHECK(H::problems({}) == std::vector<std::string>{"option 'field' is required"});
  CHECK(H::problems({{"field", std::string("x")}, {"times", std::int64_t{11}}}) ==
        std::vector<std::string>{"option 'times' must be between 0 and 10"});
  CHECK(H::problems({{"field", std::string("")}}) ==
        std::vector<std::string>{"option 'field': must name a field"});
}
