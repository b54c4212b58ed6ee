// Unit tests without Redis: url parsing, exact amounts, the write plan, the declaration.
#include <doctest/doctest.h>

#include <pipehost/redact.hpp>

#include <algorithm>
#include <limits>
#include <map>

#include <pipehost/testing.hpp>
#include <toml++/toml.h>

#include "amounts.hpp"
#include "redis_connection.hpp"
#include "redis_sum_sink.hpp"
#include "sink_config.hpp"
#include "write_plan.hpp"

using namespace pipehost;
using namespace pipehost::redis;

namespace {

Record transaction(std::string account, Value amount, std::int32_t partition = -1,
                   std::int64_t offset = -1) {
  static const auto schema = StructSchema::make({"account_number", "amount"});
  Record r;
  r.value = Struct{schema, {Value(std::move(account)), std::move(amount)}};
  r.origin = Origin{"tx", partition, offset};
  return r;
}

std::vector<ReadRecord> read_all(const Batch& batch, int scale = 2) {
  RecordReader reader("account_number", "amount", scale);
  std::vector<ReadRecord> out;
  for (const auto& r : batch.records) out.push_back(reader.read(r));
  return out;
}

}  // namespace

TEST_CASE("parse_redis_url accepts the usual forms") {
  auto e = parse_redis_url("redis://127.0.0.1:6379");
  CHECK(e.host == "127.0.0.1");
  CHECK(e.port == 6379);
  CHECK(e.db == 0);
  e = parse_redis_url("cache.local:7000");
  CHECK(e.host == "cache.local");
  CHECK(e.port == 7000);
  e = parse_redis_url("redis://redis/3");
  CHECK(e.host == "redis");
  CHECK(e.port == 6379);
  CHECK(e.db == 3);
  e = parse_redis_url("redis://:s3cret@h:1/2");
  CHECK(e.user.empty());
  CHECK(e.password == "s3cret");
  CHECK(e.describe() == "h:1/2");
  e = parse_redis_url("redis://app:pw@h");
  CHECK(e.user == "app");
  CHECK(e.password == "pw");
  e = parse_redis_url("redis://[::1]:6380/");
  CHECK(e.host == "::1");
  CHECK(e.port == 6380);
  CHECK(e.describe() == "[::1]:6380/0");
  // A password holding '/' (base64) or '@', written as is or percent-encoded.
  e = parse_redis_url("redis://:pa/ss@h:16379/1");
  CHECK(e.password == "pa/ss");
  CHECK(e.host == "h");
  CHECK(e.db == 1);
  e = parse_redis_url("redis://app:p%40ss%2Fw%25rd@h");
  CHECK(e.user == "app");
  CHECK(e.password == "p@ss/w%rd");
  CHECK_THROWS_WITH_AS(parse_redis_url("redis://:50%@h"), doctest::Contains("%25"), std::invalid_argument);
  // Never printed: the lone userinfo is the default user's password to Redis.
  for (const char* url : {"redis://:pa/ss@h:1/2", "redis://s3cretpw@h/3", "redis://app:pa/ss@h"}) {
    CAPTURE(url);
    CHECK(redact::url(url).find("ss") == std::string::npos);
    CHECK(redact::url(url).find("s3cret") == std::string::npos);
  }
  CHECK(redact::url("redis://app:pw@h:1/2") == "redis://app:***@h:1/2");
}

TEST_CASE("parse_redis_url rejects bad urls with a reason") {
  CHECK_THROWS_WITH_AS(parse_redis_url("http://h:1"), doctest::Contains("redis:// scheme"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_redis_url("h:0"), doctest::Contains("port"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_redis_url("h:99999"), doctest::Contains("port"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_redis_url("h:x"), doctest::Contains("port"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_redis_url("h:"), doctest::Contains("port"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_redis_url("redis://h/x"), doctest::Contains("database"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_redis_url("redis://:7/1"), doctest::Contains("missing host"),
                       std::invalid_argument);
  CHECK_THROWS_AS(parse_redis_url("[::1"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(parse_redis_url("redis:/127.0.0.1:16379"),
                       doctest::Contains("two slashes after redis:"), std::invalid_argument);
  CHECK(parse_redis_url("redis:6379").host == "redis");  // a host named redis (compose)
}

TEST_CASE("format_units writes exactly `scale` decimals") {
  CHECK(format_units(1234567, 2) == "12345.67");
  CHECK(format_units(5, 2) == "0.05");
  CHECK(format_units(-5, 2) == "-0.05");
  CHECK(format_units(-100, 2) == "-1.00");
  CHECK(format_units(0, 2) == "0.00");
  CHECK(format_units(7, 0) == "7");
  CHECK(format_units(-7, 0) == "-7");
  CHECK(format_units(1, 3) == "0.001");
  CHECK(format_units(kExactLimit - 1, 2) == "90071992547409.91");
  CHECK(format_units(std::numeric_limits<std::int64_t>::min(), 0) == "-9223372036854775808");
}

TEST_CASE("parse_units is the inverse of format_units") {
  for (std::int64_t u : {0LL, 1LL, -1LL, 99LL, 100LL, -12345LL, 1234567LL, 9007199254740991LL})
    CHECK(parse_units(format_units(u, 2), 2) == u);
  CHECK(parse_units("12.5", 2) == 1250);
  CHECK(parse_units("12", 2) == 1200);
  CHECK(parse_units("12.500", 2) == 1250);
  CHECK(parse_units("+3.01", 2) == 301);
  CHECK_FALSE(parse_units("12.345", 2));
  CHECK_FALSE(parse_units("", 2));
  CHECK_FALSE(parse_units(".5", 2));
  CHECK_FALSE(parse_units("1e3", 2));
  CHECK_FALSE(parse_units("1.2.3", 2));
}

TEST_CASE("to_units converts amounts to integer units without drift") {
  std::string problem;
  CHECK(to_units(Value(0.29), 2, problem) == 29);  // 0.29 * 100 = 28.999999999999996
  CHECK(to_units(Value(1.15), 2, problem) == 115);
  CHECK(to_units(Value(-0.07), 2, problem) == -7);
  CHECK(to_units(Value(std::int64_t{42}), 2, problem) == 4200);
  CHECK(to_units(Value("19.99"), 2, problem) == 1999);
  CHECK(to_units(Value(2.5), 0, problem) == 3);  // half away from zero, like llround
  CHECK_FALSE(to_units(Value("abc"), 2, problem));
  CHECK(problem == "is not a decimal number");
  CHECK_FALSE(to_units(Value("1.999"), 2, problem));
  CHECK(problem == "has more than 2 decimals");
  CHECK_FALSE(to_units(Value("18446744073709551615"), 2, problem));  // a uint64 decoded as its text
  CHECK(problem == "is out of range");
  CHECK_FALSE(to_units(Value("1e2"), 2, problem));
  CHECK(problem == "is in exponent notation, not a plain decimal number");
  CHECK_FALSE(to_units(Value("19.999"), 2, problem));  // exact: never rounded
  CHECK(to_units(Value("0.1000000000000000055511151231257827"), 1, problem) == std::nullopt);
  CHECK(to_units(Value("-90071992547409.91"), 2, problem) == -(kExactLimit - 1));
  CHECK_FALSE(to_units(Value("90071992547409.92"), 2, problem));
  CHECK_FALSE(to_units(Value(true), 2, problem));
  CHECK(problem == "is not a number");
  CHECK_FALSE(to_units(Value(), 2, problem));
  CHECK(problem == "is null");
  CHECK_FALSE(to_units(Value(std::numeric_limits<double>::infinity()), 2, problem));
  CHECK_FALSE(to_units(Value(1e14), 2, problem));  // 1e16 units >= 2^53
  CHECK(problem == "is out of range");
  CHECK_FALSE(to_units(Value(std::int64_t{1} << 50), 2, problem));

  // A million typical amounts: the double path matches integer cents every time.
  for (std::int64_t cents = -500000; cents <= 500000; ++cents)
    REQUIRE(to_units(Value(static_cast<double>(cents) / 100.0), 2, problem) == cents);
}

TEST_CASE("decimal::rounds tells a double with more decimals than scale from one next to a unit") {
  for (std::int64_t cents = -500000; cents <= 500000; ++cents)
    REQUIRE_FALSE(decimal::rounds(static_cast<double>(cents) / 100.0, 2));
  CHECK_FALSE(decimal::rounds(0.1 + 0.2, 2));  // 30.000000000000004 cents
  CHECK_FALSE(decimal::rounds(90071992547409.91, 2));
  CHECK(decimal::rounds(0.004, 2));
  CHECK(decimal::rounds(10.555, 2));
  CHECK(decimal::rounds(1.005, 2));  // 100.49999999999999 cents
  CHECK(decimal::rounds(523.1234567, 2));
  CHECK_FALSE(decimal::rounds(523.1234567, 7));
  CHECK(decimal::rounding_warning("amount", 0.004, 2) ==
        "field 'amount' holds 0.004, which has more decimals than scale = 2: it is counted as "
        "0.00 (rounded half away from zero, as written), as are others like it (metric amounts_rounded); "
        "set the sink's scale higher to keep more decimals");
}

TEST_CASE("RecordReader names the field that is wrong") {
  Batch b;
  b.records.push_back(transaction("A1", Value(1.5)));
  b.records.push_back(transaction("A2", Value(true)));
  b.records.push_back(transaction("", Value(1.0)));
  Record no_amount;
  no_amount.value = Struct{StructSchema::make({"account_number"}), {Value("A3")}};
  b.records.push_back(no_amount);
  b.records.push_back(Record{});  // no decoded value at all
  Record int_key = transaction("x", Value(2));
  int_key.value.as<Struct>()->fields[0] = Value(std::int64_t{77});
  b.records.push_back(int_key);
  auto read = read_all(b);
  CHECK(read[0].problem.empty());
  CHECK(read[0].key() == "A1");
  CHECK(read[0].units == 150);
  CHECK(read[1].problem == "value field 'amount' is not a number");
  CHECK(read[2].problem == "key field 'account_number' is empty");
  CHECK(read[3].problem == "value field 'amount' is missing");
  CHECK(read[4].problem.find("no decoded struct value") != std::string::npos);
  CHECK(read[5].key() == "77");
  CHECK(read[5].units == 200);
}

TEST_CASE("plan_batch sums per key and skips what is already applied") {
  Batch b;
  b.records.push_back(transaction("A", Value(1.10), 0, 5));   // below position 7: applied
  b.records.push_back(transaction("A", Value(2.20), 0, 7));
  b.records.push_back(transaction("B", Value(0.05), 1, 0));
  b.records.push_back(transaction("A", Value(-0.30), 0, 8));
  b.records.push_back(transaction("B", Value(0.01), 1, 1));
  b.spans = b.spans_from_records();
  b.spans[1].next = 3;  // offset 2 of partition 1 was dropped or dead-lettered before the sink
  CHECK(partition_fields(b) == std::vector<std::string>{"tx:0", "tx:1"});
  PositionCache positions{{"tx:0", 7}, {"tx:1", std::nullopt}};
  WritePlan plan = plan_batch(b, read_all(b), positions);
  using Inc = std::pair<std::string, std::int64_t>;
  CHECK(plan.increments == std::vector<Inc>{{"A", 190}, {"B", 6}});
  REQUIRE(plan.partitions.size() == 2);
  CHECK(plan.partitions[0].field == "tx:0");
  CHECK(plan.partitions[0].expected == 7);
  CHECK(plan.partitions[0].next == 9);
  CHECK(plan.partitions[1].field == "tx:1");
  CHECK_FALSE(plan.partitions[1].expected);
  CHECK(plan.partitions[1].next == 3);
  CHECK(plan.counted == std::vector<std::size_t>{1, 2, 3, 4});
  CHECK(plan.already_applied == 1);
}

TEST_CASE("plan_batch counts records without a source position only for a batch applied nowhere") {
  // count_by's output: its totals replace the batch's records, the spans stay.
  Batch b;
  b.records.push_back(transaction("A", Value(3.0)));
  b.records.push_back(transaction("B", Value(0.5)));
  b.spans = {{"tx", 0, 100, 612}, {"tx", 1, 40, 90}};
  using Inc = std::pair<std::string, std::int64_t>;
  SUBCASE("applied nowhere: counted, positions move") {
    WritePlan plan = plan_batch(b, read_all(b), PositionCache{{"tx:0", 100}, {"tx:1", std::nullopt}});
    CHECK(plan.increments == std::vector<Inc>{{"A", 300}, {"B", 50}});
    CHECK(plan.partitions.size() == 2);
    CHECK(plan.already_applied == 0);
  }
  SUBCASE("applied everywhere (the retry after a lost reply): nothing counted twice") {
    WritePlan plan = plan_batch(b, read_all(b), PositionCache{{"tx:0", 612}, {"tx:1", 90}});
    CHECK(plan.empty());
    CHECK(plan.already_applied == 2);
  }
  SUBCASE("one partition applied, the other not: read again") {
    CHECK_THROWS_WITH_AS(plan_batch(b, read_all(b), PositionCache{{"tx:0", 612}, {"tx:1", 40}}),
                         doctest::Contains("shows part of this batch's partitions applied"),
                         PositionMismatch);
  }
  SUBCASE("a position inside a span (another writer): read again from it") {
    CHECK_THROWS_WITH_AS(plan_batch(b, read_all(b), PositionCache{{"tx:0", 400}, {"tx:1", 40}}),
                         doctest::Contains("Redis holds position 400 for tx:0 but this batch covers 100..612"),
                         PositionMismatch);
  }
  SUBCASE("an unknown start with a position stored: read again from it") {
    b.spans[0].from = -1;
    CHECK_THROWS_AS(plan_batch(b, read_all(b), PositionCache{{"tx:0", 100}, {"tx:1", 40}}),
                    PositionMismatch);
  }
  SUBCASE("after records the log lost: counted") {
    b.spans[0].from = Span::kAfterLostRecords;
    WritePlan plan = plan_batch(b, read_all(b), PositionCache{{"tx:0", 50}, {"tx:1", 40}});
    CHECK(plan.increments.size() == 2);
  }
}

TEST_CASE("plan_batch of a fully applied batch is empty") {
  Batch b;
  for (int i = 0; i < 10; ++i) b.records.push_back(transaction("A", Value(1.0), 2, i));
  b.spans = b.spans_from_records();
  PositionCache positions{{"tx:2", 10}};
  WritePlan plan = plan_batch(b, read_all(b), positions);
  CHECK(plan.empty());
  CHECK(plan.already_applied == 10);
  CHECK(plan.counted.empty());
}

TEST_CASE("plan_batch handles interleaved partitions") {
  Batch b;
  for (int i = 0; i < 6; ++i) b.records.push_back(transaction("K", Value(0.01), i % 2, 100 + i));
  b.spans = b.spans_from_records();
  PositionCache positions{{"tx:0", 102}, {"tx:1", std::nullopt}};
  WritePlan plan = plan_batch(b, read_all(b), positions);
  REQUIRE(plan.partitions.size() == 2);
  CHECK(plan.partitions[0].next == 105);
  CHECK(plan.partitions[1].next == 106);
  CHECK(plan.already_applied == 1);  // offset 100 of partition 0
  CHECK(plan.increments == std::vector<std::pair<std::string, std::int64_t>>{{"K", 5}});
}

TEST_CASE("plan_batch refuses a batch that does not continue from the stored position") {
  Batch b;
  for (int i = 20; i < 25; ++i) b.records.push_back(transaction("K", Value(0.01), 0, i));
  b.spans = {{"tx", 0, 20, 25}};
  CHECK_THROWS_WITH_AS(plan_batch(b, read_all(b), PositionCache{{"tx:0", 15}}),
                       doctest::Contains("Redis holds position 15 for tx:0 but this batch "
                                         "continues from 20"),
                       PositionMismatch);
  // Starting exactly there, or before (a redelivery), is fine; so is an unknown start.
  CHECK_NOTHROW(plan_batch(b, read_all(b), PositionCache{{"tx:0", 20}}));
  CHECK(plan_batch(b, read_all(b), PositionCache{{"tx:0", 22}}).already_applied == 2);
  b.spans[0].from = -1;
  CHECK_NOTHROW(plan_batch(b, read_all(b), PositionCache{{"tx:0", 15}}));
  // A gap the source vouches for (transaction markers): from 20, first record at 21.
  Batch markers;
  markers.records.push_back(transaction("K", Value(0.01), 0, 21));
  markers.spans = {{"tx", 0, 20, 22}};
  WritePlan plan = plan_batch(markers, read_all(markers), PositionCache{{"tx:0", 20}});
  CHECK(plan.partitions.at(0).next == 22);
  CHECK(plan.counted.size() == 1);
}

TEST_CASE("sink options: defaults, positions key from the pipeline, bad url") {
  SinkConfig c = resolve(RedisSumConfig{}, "transactions");
  CHECK(c.endpoint.host == "127.0.0.1");
  CHECK(c.endpoint.port == 6379);
  CHECK(c.key_field == "account_number");
  CHECK(c.value_field == "amount");
  CHECK(c.layout == Layout::string);
  CHECK(c.scale == 2);
  CHECK(c.hash_key == "totals");
  CHECK(c.positions_key == "pipehost:positions:transactions");
  RedisSumConfig hash;
  hash.layout = "hash";
  hash.positions_key = "p";
  c = resolve(hash, "x");
  CHECK(c.layout == Layout::hash);
  CHECK(c.positions_key == "p");
  using H = pipehost::testing::StageHarness<RedisSumSink>;
  auto problems = H::problems({{"url", std::string("redis://h:bad")}});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("option 'url'") == 0);
  CHECK(H::problems({{"layout", std::string("list")}}).at(0) ==
        "option 'layout' cannot be \"list\"; allowed: string, hash");
  CHECK(H::problems({{"scale", std::int64_t{12}}}).at(0) == "option 'scale' must be between 0 and 9");
  CHECK(H::problems({{"key_field", std::string("")}}).at(0).find("must not be empty") != std::string::npos);
  CHECK(H::problems({{"colour", std::string("red")}}).at(0) == "unknown option 'colour'");
  CHECK(H::problems({}).empty());
  CHECK(H::problems({{"layout", std::string("hash")}, {"hash_key", std::string("p")},
                     {"positions_key", std::string("p")}})
            .at(0)
            .find("option 'hash_key': is the positions hash") == 0);
}
