#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <pipehost/testing.hpp>

#include "../running_totals.hpp"

extern "C" const pipehost::PluginSpec* pipehost_plugin(const char** error) noexcept;

using namespace pipehost;

TEST_CASE("decimal formatting is exact") {
  CHECK(logsink::format_units(123450, 2) == "1234.50");
  CHECK(logsink::format_units(5, 2) == "0.05");
  CHECK(logsink::format_units(-5, 2) == "-0.05");
  CHECK(logsink::format_units(7, 0) == "7");
  CHECK(logsink::to_units(0.1 + 0.2, 2) == 30);
}

TEST_CASE("the sink sums per key across tasks and rejects records without the fields") {
  const char* error = nullptr;
  const PluginSpec* spec = pipehost_plugin(&error);
  REQUIRE(spec);
  const ComponentSpec& c = spec->components.front();
  testing::TestContext ctx;
  ctx.pipeline_name = "log-test";
  auto options = testing::options_for(c.options, {{"each_record", false}});
  std::string why;
  auto a = c.make_sink(options, ctx, why);
  auto b = c.make_sink(options, ctx, why);
  REQUIRE(a);
  REQUIRE(b);
  auto schema = StructSchema::make({"account_number", "amount"});
  auto record = [&](const char* account, double amount) {
    Record r;
    r.value = Struct{schema, {Value(account), Value(amount)}};
    return r;
  };
  Batch one;
  one.records = {record("A", 0.1), record("B", 2.5), record("A", 0.2)};
  Batch two;
  two.records = {record("A", 0.3), Record{}};
  int done = 0;
  CHECK(a->write(one, [&](Status s) { done += s.is_ok(); }).is_ok());
  CHECK(b->write(two, [&](Status s) { done += s.is_ok(); }).is_ok());
  CHECK(done == 2);
  REQUIRE(two.rejections.size() == 1);
  CHECK(two.rejections[0].reason.find("account_number") != std::string::npos);
  auto totals = logsink::RunningTotals::for_pipeline("log-test", 2)->snapshot();
  CHECK(totals["A"] == 60);
  CHECK(totals["B"] == 250);
}

TEST_CASE("a record redelivered from a position already counted is counted once") {
  auto totals = logsink::RunningTotals::for_pipeline("dedupe", 2);
  CHECK(totals->add("A", 100, "t", 0, 0) == 100);
  CHECK(totals->add("A", 100, "t", 0, 1) == 200);
  CHECK_FALSE(totals->add("A", 100, "t", 0, 1));  // redelivered
  CHECK(totals->add("A", 100, "t", 1, 0) == 300);  // another partition
  CHECK(totals->add("A", 100, "", -1, -1) == 400);  // no origin: always counted
  CHECK(totals->next_offset("t", 0) == 2);
  CHECK_FALSE(totals->next_offset("t", 5));
}
