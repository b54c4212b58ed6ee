#include <doctest/doctest.h>

#include <limits>

#include <pipehost/testing.hpp>

#include "../running_totals.hpp"

extern "C" const pipehost::PluginSpec* pipehost_plugin(const char** error) noexcept;

using namespace pipehost;

namespace {

const std::string kSum = "account_number\namount";  // the default key and amount fields

const ComponentSpec& log_component() {
  const char* error = nullptr;
  const PluginSpec* spec = pipehost_plugin(&error);
  REQUIRE(spec);
  return spec->components.front();
}

std::unique_ptr<SinkStage> make(testing::TestContext& ctx, std::map<std::string, OptionValue> given) {
  const ComponentSpec& c = log_component();
  std::string why;
  auto sink = c.make_sink(testing::options_for(c.options, std::move(given)), ctx, why);
  REQUIRE_MESSAGE(sink, why);
  return sink;
}

Record record(const char* account, Value amount, std::int32_t partition = -1,
              std::int64_t offset = -1) {
  static const auto schema = StructSchema::make({"account_number", "amount"});
  Record r;
  r.value = Struct{schema, {Value(account), std::move(amount)}};
  r.origin = {"t", partition, offset};
  return r;
}

// Drives the stage as the host does: prepare, rejections set aside, write.
std::vector<Rejection> deliver(SinkStage& sink, Batch& batch, Status expected = Status::ok()) {
  if (batch.spans.empty()) batch.spans = batch.spans_from_records();
  REQUIRE(sink.prepare(batch).is_ok());
  std::vector<Rejection> rejected = std::move(batch.rejections);
  batch.rejections.clear();
  batch.compact();
  int done = 0;
  Status s = sink.write(batch, [&](Status) { ++done; });
  CHECK(s.code() == expected.code());
  CHECK(done == (expected.is_ok() ? 1 : 0));
  return rejected;
}

}  // namespace

TEST_CASE("the sink sums per key across tasks and rejects records without the fields") {
  testing::TestContext ctx;
  ctx.pipeline_name = "log-test";
  auto a = make(ctx, {{"each_record", false}});
  auto b = make(ctx, {{"each_record", false}});
  Batch one;
  one.records = {record("A", 0.1), record("B", 2.5), record("A", 0.2)};
  Batch two;
  two.records = {record("A", 0.3), Record{}, record("", 1.0)};  // no value; an empty key, as redis_sum
  CHECK(deliver(*a, one).empty());
  auto rejected = deliver(*b, two);
  REQUIRE(rejected.size() == 2);
  CHECK(rejected[0].reason == "field 'account_number' is missing");
  CHECK(rejected[1].reason == "field 'account_number' is empty");
  auto totals = logsink::RunningTotals::for_pipeline("log-test", kSum, 2)->snapshot();
  CHECK(totals["A"] == 60);  // 0.1 + 0.2 + 0.3, exactly
  CHECK(totals["B"] == 250);
}

TEST_CASE("amounts that are not finite, out of range or inexact decimals are rejected") {
  testing::TestContext ctx;
  ctx.pipeline_name = "log-bad-amounts";
  auto sink = make(ctx, {{"each_record", false}});
  Batch b;
  b.records = {record("A", std::numeric_limits<double>::quiet_NaN()),
               record("A", std::numeric_limits<double>::infinity()),
               record("A", 1e300),
               record("A", "12.345"),
               record("A", "1e3"),
               record("A", "12.34"),
               record("A", std::int64_t{5})};
  auto rejected = deliver(*sink, b);
  REQUIRE(rejected.size() == 5);
  CHECK(rejected[0].reason == "field 'amount' is not a finite number");
  CHECK(rejected[1].reason == "field 'amount' is not a finite number");
  CHECK(rejected[2].reason == "field 'amount' is out of range");
  CHECK(rejected[3].reason == "field 'amount' has more than 2 decimals");
  CHECK(rejected[4].reason == "field 'amount' is in exponent notation, not a plain decimal number");
  CHECK(logsink::RunningTotals::for_pipeline("log-bad-amounts", kSum, 2)->snapshot()["A"] == 1734);
}

TEST_CASE("a double with more decimals than scale is rounded, counted and said once") {
  testing::TestContext ctx;
  ctx.pipeline_name = "log-rounded";
  auto sink = make(ctx, {{"each_record", false}});
  Batch b;
  b.records = {record("A", 0.004), record("A", 0.004), record("A", 1.25)};
  CHECK(deliver(*sink, b).empty());
  CHECK(logsink::RunningTotals::for_pipeline("log-rounded", kSum, 2)->snapshot()["A"] == 125);
  CHECK(ctx.counter_value("amounts_rounded") == 2);
  std::size_t warned = 0;
  for (const auto& line : ctx.logs) warned += line.find("holds 0.004") != std::string::npos;
  CHECK(warned == 1);
}

TEST_CASE("a total leaving the 64-bit range fails the batch and changes nothing") {
  testing::TestContext ctx;
  ctx.pipeline_name = "log-overflow";
  auto sink = make(ctx, {{"each_record", false}, {"scale", std::int64_t{0}}});
  const std::int64_t big = std::numeric_limits<std::int64_t>::max() - 10;
  Batch first;
  first.records = {record("A", big)};
  deliver(*sink, first);
  Batch second;
  second.records = {record("B", std::int64_t{1}), record("A", std::int64_t{11})};
  deliver(*sink, second, Status::fatal(""));
  auto totals = logsink::RunningTotals::for_pipeline("log-overflow", kSum, 0)->snapshot();
  CHECK(totals["A"] == big);
  CHECK(totals.count("B") == 0);
}

TEST_CASE("a record redelivered from a position already counted is counted once") {
  logsink::RunningTotals totals(2);
  std::vector<logsink::Entry> entries(2, logsink::Entry{"A", 100});
  Batch b;
  b.records = {record("A", 1.0, 0, 0), record("A", 1.0, 0, 1)};
  b.spans = b.spans_from_records();
  auto first = totals.apply(b, entries);
  CHECK(first[0] == 100);
  CHECK(first[1] == 200);
  auto again = totals.apply(b, entries);  // redelivered after a rebalance
  CHECK_FALSE(again[0]);
  CHECK_FALSE(again[1]);
  CHECK(totals.next_offset("t", 0) == 2);
  CHECK_FALSE(totals.next_offset("t", 5));
}

TEST_CASE("copies of one record fanned out in a batch are all counted") {
  logsink::RunningTotals totals(2);
  Batch b;
  b.records = {record("A", 1.0, 0, 7), record("B", 1.0, 0, 7), record("A", 1.0, 0, 8)};
  b.spans = b.spans_from_records();
  auto out = totals.apply(b, {{"A", 100}, {"B", 100}, {"A", 100}});
  CHECK(out[0] == 100);
  CHECK(out[1] == 100);
  CHECK(out[2] == 200);
  CHECK(totals.snapshot()["A"] == 200);
  CHECK(totals.records() == 3);
}

TEST_CASE("records dropped before the sink still move the position") {
  logsink::RunningTotals totals(2);
  Batch b;
  b.records = {record("A", 1.0, 0, 3)};
  b.spans = {{"t", 0, 0, 10}};
  totals.apply(b, {{"A", 100}});
  CHECK(totals.next_offset("t", 0) == 10);
}

TEST_CASE("a pipeline restarted in the process goes on from its sums, not from zero") {
  // restart_attempts, an admin restart or a reload makes new sinks while the group resumes
  // from its committed offsets: the running sums must go on, and what was counted not twice.
  testing::TestContext ctx;
  ctx.pipeline_name = "log-restarted";
  {
    auto before = make(ctx, {{"each_record", false}});
    Batch b;
    b.records = {record("A", 1.5, 0, 0), record("A", 2.0, 0, 1)};
    CHECK(deliver(*before, b).empty());
    before->stop();
  }
  auto after = make(ctx, {{"each_record", false}});
  Batch on;  // the group resumes where the first run's commit left it
  on.records = {record("A", 0.25, 0, 2)};
  CHECK(deliver(*after, on).empty());
  Batch again;  // and a redelivery of what was counted before the restart counts nothing
  again.records = {record("A", 1.5, 0, 0), record("A", 2.0, 0, 1)};
  CHECK(deliver(*after, again).empty());
  CHECK(logsink::RunningTotals::for_pipeline("log-restarted", kSum, 2)->snapshot()["A"] == 375);
  // Another sum in the same pipeline (a reload changed the field) starts on its own.
  CHECK(logsink::RunningTotals::for_pipeline("log-restarted", "account_number\nfee", 2)->snapshot().empty());
}

TEST_CASE("a key with control characters prints escaped, on its own line") {
  testing::TestContext ctx;
  ctx.pipeline_name = "log-escaped";
  auto sink = make(ctx, {{"output", std::string("log")}});
  Batch b;
  b.records = {record("a\r\n(ACC1, 999.00", 5.0), record("back\\slash", 1.0)};
  CHECK(deliver(*sink, b).empty());
  REQUIRE(sink->stop().is_ok());
  std::string all;
  for (const auto& line : ctx.logs) all += line + "\n";
  CHECK(all.find("(a\\r\\n(ACC1, 999.00, 5.00)") != std::string::npos);
  CHECK(all.find("(back\\\\slash, 1.00)") != std::string::npos);
  CHECK(all.find("\n(ACC1") == std::string::npos);
}
