// Behaviour tests of the redis_sum sink against a real redis-server started per test.
#include <doctest/doctest.h>

#include <map>
#include <random>

#include <pipehost/testing.hpp>

#include "amounts.hpp"
#include "redis_server.hpp"
#include "reply_dropper.hpp"
#include "redis_sum_sink.hpp"

using namespace pipehost;
using namespace pipehost::redis;
using pipehost::redis::testing::RedisServer;

namespace {

constexpr std::string_view kTopic = "jagoTransactions";

Record transaction(const std::string& account, Value amount, std::int32_t partition,
                   std::int64_t offset) {
  static const auto schema = StructSchema::make({"transaction_id", "account_number", "amount"});
  Record r;
  r.value = Struct{schema, {Value("t"), Value(account), std::move(amount)}};
  r.origin = Origin{kTopic, partition, offset};
  return r;
}

Record cents_record(const std::string& account, std::int64_t cents, std::int32_t partition,
                    std::int64_t offset) {
  return transaction(account, Value(static_cast<double>(cents) / 100.0), partition, offset);
}

struct Fixture {
  RedisServer server;
  pipehost::testing::TestContext context;
  RedisConnection probe{parse_redis_url(server.url()), std::chrono::seconds(2),
                        std::chrono::seconds(5)};

  std::unique_ptr<RedisSumSink> sink(std::map<std::string, OptionValue> given = {}) {
    given.try_emplace("url", server.url());
    given.try_emplace("command_timeout_ms", std::int64_t{2000});
    auto s = pipehost::testing::make<RedisSumSink>(std::move(given), context);
    s->start();
    return s;
  }

  std::string get(const std::string& key) {
    Reply r = probe.command({"GET", key});
    return r->type == REDIS_REPLY_NIL ? "<nil>" : std::string(text_of(*r));
  }
  std::string hget(const std::string& hash, const std::string& field) {
    Reply r = probe.command({"HGET", hash, field});
    return r->type == REDIS_REPLY_NIL ? "<nil>" : std::string(text_of(*r));
  }
};

// Writes as the host does and checks the sink calls done exactly once with ok.
pipehost::testing::SinkResult write_ok(Sink& sink, Batch& batch) {
  auto result = pipehost::testing::write_batch(sink, batch);
  CHECK(result.done_calls == 1);
  CHECK(result.status.is_ok());
  return result;
}

// Writes as the host does; what write throws propagates.
void write(Sink& sink, Batch& batch) { pipehost::testing::write_batch(sink, batch); }

Batch batch_of(const std::vector<Record>& records, std::size_t from, std::size_t to) {
  Batch b;
  b.records.assign(records.begin() + static_cast<std::ptrdiff_t>(from),
                   records.begin() + static_cast<std::ptrdiff_t>(to));
  return b;
}

// `n` records over 20 accounts and 3 partitions, with the expected totals in cents.
std::vector<Record> generate(int n, std::map<std::string, std::int64_t>& expected,
                             unsigned seed = 7) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::int64_t> cents(-50000, 1000000);
  std::vector<Record> out;
  std::int64_t offsets[3] = {0, 0, 0};
  for (int i = 0; i < n; ++i) {
    std::string account = "ACC" + std::to_string(rng() % 20);
    std::int64_t c = cents(rng);
    auto partition = static_cast<std::int32_t>(rng() % 3);
    expected[account] += c;
    out.push_back(cents_record(account, c, partition, offsets[partition]++));
  }
  return out;
}

void check_totals(Fixture& f, const std::map<std::string, std::int64_t>& expected,
                  const std::string& prefix = "") {
  for (const auto& [account, cents] : expected) {
    INFO(account);
    CHECK(f.get(prefix + account) == format_units(cents, 2));
  }
}

}  // namespace

TEST_CASE("totals are exact for many 2-decimal amounts") {
  Fixture f;
  auto sink = f.sink();
  std::map<std::string, std::int64_t> expected;
  auto records = generate(5000, expected);
  for (std::size_t i = 0; i < records.size(); i += 512) {
    Batch b = batch_of(records, i, std::min(records.size(), i + 512));
    write_ok(*sink, b);
  }
  check_totals(f, expected);
  CHECK(f.context.counter_value("records_out") == 5000);
  CHECK(f.context.counter_value("batches_out") == 10);
  CHECK(f.context.counter_value("conflicts") == 0);
}

TEST_CASE("a redelivered batch is counted once, also by a restarted sink") {
  Fixture f;
  std::map<std::string, std::int64_t> expected;
  auto records = generate(300, expected);
  auto sink = f.sink();
  Batch first = batch_of(records, 0, records.size());
  write_ok(*sink, first);
  Batch again = batch_of(records, 0, records.size());
  write_ok(*sink, again);
  check_totals(f, expected);
  CHECK(f.context.counter_value("records_already_applied") == 300);

  auto restarted = f.sink();  // a new process: knows nothing, reads positions from Redis
  Batch third = batch_of(records, 0, records.size());
  write_ok(*restarted, third);
  check_totals(f, expected);
  CHECK(f.context.counter_value("records_out") == 300);
  CHECK(f.context.counter_value("batches_out") == 1);
  CHECK(f.context.counter_value("conflicts") == 0);
}

TEST_CASE("a batch overlapping the applied range counts only the new records") {
  Fixture f;
  auto sink = f.sink();
  std::vector<Record> records;
  for (int i = 0; i < 150; ++i) records.push_back(cents_record("A", 100 + i, 0, i));
  Batch first = batch_of(records, 0, 100);
  write_ok(*sink, first);
  Batch overlap = batch_of(records, 50, 150);
  write_ok(*sink, overlap);
  std::int64_t cents = 0;
  for (int i = 0; i < 150; ++i) cents += 100 + i;
  CHECK(f.get("A") == format_units(cents, 2));
  CHECK(sink->stored_position(kTopic, 0) == 150);
  CHECK(f.context.counter_value("records_out") == 150);
  CHECK(f.context.counter_value("records_already_applied") == 50);
}

TEST_CASE("a partition taken over by another process is detected and resolved") {
  Fixture f;
  std::vector<Record> records;
  for (int i = 0; i < 30; ++i) records.push_back(cents_record("A", 1, 0, i));
  auto a = f.sink();
  Batch first = batch_of(records, 0, 10);  // A applies 0..9 and caches next = 10
  write_ok(*a, first);

  pipehost::testing::TestContext other_context;  // another process takes the partition
  auto b = pipehost::testing::make<RedisSumSink>({{"url", f.server.url()}}, other_context);
  b->start();
  Batch taken = batch_of(records, 10, 20);
  write_ok(*b, taken);

  // The partition comes back to A, whose source resumes from Kafka's older commit.
  Batch back = batch_of(records, 10, 30);
  write_ok(*a, back);
  CHECK(f.get("A") == "0.30");
  CHECK(f.context.counter_value("conflicts") == 1);
  CHECK(f.context.counter_value("records_already_applied") == 10);
  CHECK(f.hget("pipehost:positions:test", std::string(kTopic) + ":0") == "30");
}

TEST_CASE("positions changed behind the sink's back: nothing is applied twice") {
  Fixture f;
  auto sink = f.sink();
  std::vector<Record> records;
  for (int i = 0; i < 20; ++i) records.push_back(cents_record("B", 250, 1, i));
  Batch first = batch_of(records, 0, 5);
  write_ok(*sink, first);
  // Another writer applied records 5..14 itself (totals and position in one step).
  f.probe.command({"MULTI"});
  f.probe.command({"SET", "B", "37.50"});
  f.probe.command({"HSET", "pipehost:positions:test", std::string(kTopic) + ":1", "15"});
  f.probe.command({"EXEC"});
  Batch rest = batch_of(records, 5, 20);
  write_ok(*sink, rest);
  CHECK(f.get("B") == "50.00");
  CHECK(f.context.counter_value("conflicts") == 1);
  CHECK(f.context.counter_value("records_out") == 10);
}

TEST_CASE("hash layout keeps the totals in one hash") {
  Fixture f;
  auto sink = f.sink({{"layout", std::string("hash")}, {"hash_key", std::string("sums")}});
  std::map<std::string, std::int64_t> expected;
  auto records = generate(1000, expected, 11);
  for (std::size_t i = 0; i < records.size(); i += 256) {
    Batch b = batch_of(records, i, std::min(records.size(), i + 256));
    write_ok(*sink, b);
  }
  Batch again = batch_of(records, 0, records.size());
  write_ok(*sink, again);
  for (const auto& [account, cents] : expected) CHECK(f.hget("sums", account) == format_units(cents, 2));
  CHECK(f.get(expected.begin()->first) == "<nil>");
}

TEST_CASE("key prefix, database, scale and signs") {
  Fixture f;
  auto sink = f.sink({{"url", f.server.url() + "/3"},
                      {"key_prefix", std::string("total:")},
                      {"scale", std::int64_t{3}},
                      {"key_field", std::string("transaction_id")}});
  Batch b;
  b.records.push_back(transaction("x", Value(0.001), -1, -1));
  b.records.push_back(transaction("x", Value(-0.004), -1, -1));
  b.records.push_back(transaction("x", Value(std::int64_t{2}), -1, -1));
  write_ok(*sink, b);
  f.probe.command({"SELECT", "3"});
  CHECK(f.get("total:t") == "1.997");
  Batch minus;
  minus.records.push_back(transaction("x", Value("-2.5"), -1, -1));
  write_ok(*sink, minus);
  CHECK(f.get("total:t") == "-0.503");
}

TEST_CASE("records without an origin are applied every time, untracked") {
  Fixture f;
  auto sink = f.sink();
  Batch b;
  b.records.push_back(cents_record("D", 199, -1, -1));
  Batch copy;
  copy.records = b.records;
  write_ok(*sink, b);
  write_ok(*sink, copy);
  CHECK(f.get("D") == "3.98");
  CHECK(f.probe.command({"EXISTS", "pipehost:positions:test"})->integer == 0);
}

TEST_CASE("a record with a missing or non-numeric field is rejected, the rest counted") {
  Fixture f;
  auto sink = f.sink();
  Batch b;
  b.records.push_back(cents_record("E", 500, 0, 0));
  b.records.push_back(transaction("E", Value("twelve"), 0, 1));
  Record no_amount;
  no_amount.value = Struct{StructSchema::make({"account_number"}), {Value("E")}};
  no_amount.origin = Origin{kTopic, 0, 2};
  b.records.push_back(no_amount);
  b.records.push_back(cents_record("E", 1, 0, 3));
  b.spans = b.spans_from_records();
  // Rejected in prepare, before anything is written: no position moves past a record
  // the host has not dead-lettered yet (it might crash, or stop on on_error = "fail").
  sink->prepare(b);
  REQUIRE(b.rejections.size() == 2);
  CHECK(b.rejections[0].reason.find("'amount' is not a decimal number") != std::string::npos);
  CHECK(b.rejections[1].reason.find("'amount' is missing") != std::string::npos);
  CHECK(b.records[1].dropped);
  CHECK(b.records[2].dropped);
  CHECK(f.hget("pipehost:positions:test", std::string(kTopic) + ":0") == "<nil>");
  CHECK(f.get("E") == "<nil>");
  // The host dealt with them: the rest is written and the position covers the batch.
  b.rejections.clear();
  b.compact();
  int calls = 0;
  sink->write(b, [&](Status s) { calls += s.is_ok(); });
  CHECK(calls == 1);
  CHECK(f.get("E") == "5.01");
  CHECK(sink->stored_position(kTopic, 0) == 4);
  CHECK(f.context.counter_value("records_out") == 2);
}

TEST_CASE("a record that would take the batch's sum out of range is rejected after a rewind") {
  Fixture f;
  auto sink = f.sink();
  // 6e13 each: two are 1.2e16 units, beyond 2^53 (9.007e15) at scale 2.
  std::vector<Record> records = {transaction("X", Value("60000000000000.00"), 0, 0),
                                 transaction("X", Value("60000000000000.00"), 0, 1),
                                 cents_record("X", 5, 0, 2), cents_record("Y", 7, 0, 3)};
  Batch first = batch_of(records, 0, 4);
  // Rejecting it while writing would store position 4 before the host dead-letters it:
  // the sink has the batch read again instead, having written nothing.
  CHECK_THROWS_AS(write(*sink, first), PositionMismatch);
  CHECK(f.get("X") == "<nil>");
  CHECK(f.hget("pipehost:positions:test", std::string(kTopic) + ":0") == "<nil>");
  Batch again = batch_of(records, 0, 4);  // what the rewound source reads
  auto result = write_ok(*sink, again);
  REQUIRE(result.rejections.size() == 1);
  CHECK(result.rejections[0].record.origin.offset == 1);
  CHECK(result.rejections[0].reason.find("adding 60000000000000.00 to X") != std::string::npos);
  CHECK(result.rejections[0].reason.find("90071992547409.91") != std::string::npos);
  CHECK(f.get("X") == "60000000000000.05");
  CHECK(f.get("Y") == "0.07");
  CHECK(sink->stored_position(kTopic, 0) == 4);
}

TEST_CASE("a record that would take a stored total out of range is rejected after a rewind") {
  Fixture f;
  auto sink = f.sink({{"layout", std::string("hash")}, {"hash_key", std::string("sums")}});
  f.probe.command({"HSET", "sums", "Z", "90071992547000.00"});
  std::vector<Record> records = {cents_record("Z", 50000, 1, 10), cents_record("Z", -1000, 1, 11),
                                 cents_record("W", 1, 1, 12), cents_record("Z", 50000, 1, 13)};
  Batch first = batch_of(records, 0, 4);
  first.spans = {{kTopic, 1, 10, 14}};
  CHECK_THROWS_AS(write(*sink, first), PositionMismatch);
  CHECK(f.hget("sums", "Z") == "90071992547000.00");  // nothing changed
  CHECK(f.hget("sums", "W") == "<nil>");
  Batch again = batch_of(records, 0, 4);
  again.spans = {{kTopic, 1, 10, 14}};
  auto result = write_ok(*sink, again);
  // 500.00 does not fit on 90071992547000.00; after -10.00, the next 500.00 still does not.
  REQUIRE(result.rejections.size() == 2);
  CHECK(result.rejections[0].record.origin.offset == 10);
  CHECK(result.rejections[1].record.origin.offset == 13);
  CHECK(result.rejections[0].reason.find("the total stored in Redis") != std::string::npos);
  CHECK(f.hget("sums", "Z") == "90071992546990.00");
  CHECK(f.hget("sums", "W") == "0.01");
  CHECK(sink->stored_position(kTopic, 1) == 14);
}

TEST_CASE("records dropped before the sink still move the position: the span does") {
  Fixture f;
  auto sink = f.sink();
  Batch b;
  for (int i = 0; i < 10; ++i) b.records.push_back(cents_record("K", 1, 0, i));
  b.spans = {{kTopic, 0, 0, 10}};
  b.records.resize(5);  // a transform dropped offsets 5..9
  write_ok(*sink, b);
  CHECK(sink->stored_position(kTopic, 0) == 10);
  Batch empty;  // a batch whose records were all filtered out
  empty.spans = {{kTopic, 0, 10, 20}};
  write_ok(*sink, empty);
  CHECK(sink->stored_position(kTopic, 0) == 20);
  CHECK(f.get("K") == "0.05");
}

TEST_CASE("Redis lost writes: a batch past the stored position is refused, not applied") {
  Fixture f;
  auto sink = f.sink();
  std::vector<Record> records;
  for (int i = 0; i < 30; ++i) records.push_back(cents_record("L", 100, 0, i));
  Batch first = batch_of(records, 0, 10);
  first.spans = {{kTopic, 0, 0, 10}};
  write_ok(*sink, first);
  Batch second = batch_of(records, 10, 20);
  second.spans = {{kTopic, 0, 10, 20}};
  write_ok(*sink, second);
  // Redis goes back to its state after the first batch (a restart that lost the last
  // second of an everysec AOF, a failover to a lagging replica).
  f.probe.command({"SET", "L", "10.00"});
  f.probe.command({"HSET", "pipehost:positions:test", std::string(kTopic) + ":0", "10"});
  Batch third = batch_of(records, 20, 30);
  third.spans = {{kTopic, 0, 20, 30}};
  CHECK_THROWS_WITH_AS(write(*sink, third), doctest::Contains("Redis lost writes"),
                       PositionMismatch);
  CHECK(f.get("L") == "10.00");  // nothing applied
  // The host rewinds the source to the stored position and the records come again.
  REQUIRE(sink->stored_position(kTopic, 0) == 10);
  Batch again = batch_of(records, 10, 30);
  again.spans = {{kTopic, 0, 10, 30}};
  write_ok(*sink, again);
  CHECK(f.get("L") == "30.00");
  CHECK(sink->stored_position(kTopic, 0) == 30);
}

TEST_CASE("positions that vanished from Redis fail the sink: totals cannot be exact") {
  Fixture f;
  auto sink = f.sink();
  Batch first;
  first.records.push_back(cents_record("M", 100, 0, 0));
  write_ok(*sink, first);
  f.probe.command({"FLUSHALL"});
  Batch next;
  next.records.push_back(cents_record("M", 100, 0, 1));
  next.spans = {{kTopic, 0, 1, 2}};
  CHECK_THROWS_WITH_AS(write(*sink, next), doctest::Contains("vanished"), FatalError);
}

// A restart without persistence: the sink's connection breaks, and the retry reconnects
// to a Redis that holds no positions at all. It used to take that for a first write and
// count on from nothing.
TEST_CASE("positions that vanished while the connection was down fail the sink too") {
  Fixture f;
  auto sink = f.sink();
  Batch first;
  first.records.push_back(cents_record("M", 100, 0, 0));
  first.spans = {{kTopic, 0, 0, 1}};
  write_ok(*sink, first);
  f.probe.command({"FLUSHALL"});
  f.probe.command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
  Batch next;
  next.records.push_back(cents_record("M", 100, 0, 1));
  next.spans = {{kTopic, 0, 1, 2}};
  bool vanished = false;
  for (int attempt = 0; attempt < 2 && !vanished; ++attempt) {  // the first may meet the dead socket
    try {
      write(*sink, next);
      FAIL("the write after the data was lost succeeded");
    } catch (const FatalError& e) {
      vanished = std::string(e.what()).find("vanished") != std::string::npos;
    } catch (const RetriableError&) {
    }
  }
  CHECK(vanished);
  CHECK(f.get("M") == "<nil>");
}

TEST_CASE("Redis down: RetriableError, then the retried batch is applied exactly") {
  Fixture f;
  auto sink = f.sink();
  std::map<std::string, std::int64_t> expected;
  auto records = generate(1024, expected, 3);
  Batch first = batch_of(records, 0, 512);
  write_ok(*sink, first);

  f.server.shutdown();  // saves to disk and exits
  Batch second = batch_of(records, 512, 1024);
  bool done_called = false;
  CHECK_THROWS_AS(write(*sink, second), RetriableError);
  CHECK_THROWS_AS(write(*sink, second), RetriableError);
  CHECK_FALSE(done_called);

  f.server.restart();
  write_ok(*sink, second);  // the host's retry of the same batch
  Batch redelivered = batch_of(records, 0, 1024);
  write_ok(*sink, redelivered);
  f.probe.disconnect();
  check_totals(f, expected);
  CHECK(f.context.counter_value("records_out") == 1024);
}

TEST_CASE("start with Redis down throws RetriableError and says so") {
  Fixture f;
  f.server.shutdown();
  auto made = pipehost::testing::make<RedisSumSink>({{"url", f.server.url()}}, f.context);
  RedisSumSink& sink = *made;
  CHECK_THROWS_AS(sink.start(), RetriableError);
  REQUIRE_FALSE(f.context.logs.empty());
  CHECK(f.context.logs.back().find("not reachable") != std::string::npos);
  f.server.restart();
  CHECK_NOTHROW(sink.start());
}

TEST_CASE("stored_position returns the stored next offset") {
  Fixture f;
  auto sink = f.sink();
  CHECK_FALSE(sink->stored_position(kTopic, 2));
  Batch b;
  for (int i = 40; i < 45; ++i) b.records.push_back(cents_record("F", 1, 2, i));
  write_ok(*sink, b);
  CHECK(sink->stored_position(kTopic, 2) == 45);
  CHECK(f.hget("pipehost:positions:test", std::string(kTopic) + ":2") == "45");
  auto fresh = f.sink({{"positions_key", std::string("elsewhere")}});
  CHECK_FALSE(fresh->stored_position(kTopic, 2));
}

TEST_CASE("a flushed script cache falls back to EVAL") {
  Fixture f;
  auto sink = f.sink();
  Batch b;
  b.records.push_back(cents_record("G", 10, 0, 0));
  write_ok(*sink, b);
  f.probe.command({"SCRIPT", "FLUSH"});
  Batch next;
  next.records.push_back(cents_record("G", 10, 0, 1));
  write_ok(*sink, next);
  CHECK(f.get("G") == "0.20");
}

// Another application's string at a total's key (seed 001 keys totals by account number
// alone), or a total written at a larger scale: one record must not stop the pipeline for
// good. Its records are rejected as for a key of another kind; the others are counted.
TEST_CASE("a stored value that is not a total this sink can add to: its records are rejected") {
  Fixture f;
  auto sink = f.sink();
  f.probe.command({"SET", "H", "lots"});
  f.probe.command({"SET", "J", "1.234"});  // scale 2
  f.probe.command({"SET", "K", "90071992547409.93"});  // 2^53 units at scale 2
  const std::vector<Record> records = {cents_record("I", 10, 0, 0), cents_record("H", 10, 0, 1),
                                       cents_record("J", 10, 0, 2), cents_record("K", 10, 0, 3),
                                       cents_record("I", 5, 0, 4)};
  auto read = [&] {
    Batch b = batch_of(records, 0, records.size());
    b.spans = {{kTopic, 0, 0, 5}};
    return b;
  };
  Batch b1 = read();
  CHECK_THROWS_AS(write(*sink, b1), PositionMismatch);  // found only by the script
  CHECK(f.get("I") == "<nil>");
  Batch b2 = read();
  auto result = write_ok(*sink, b2);
  REQUIRE(result.rejections.size() == 3);
  CHECK(result.rejections[0].reason.find("key 'H' holds \"lots\", not a decimal total") != std::string::npos);
  CHECK(result.rejections[1].reason.find("key 'J' holds \"1.234\", which has more decimals than scale 2") !=
        std::string::npos);
  CHECK(result.rejections[2].reason.find("key 'K' holds \"90071992547409.93\", beyond the exact range") !=
        std::string::npos);
  CHECK(f.get("I") == "0.15");
  CHECK(f.get("H") == "lots");
  CHECK(f.get("J") == "1.234");
  CHECK(sink->stored_position(kTopic, 0) == 5);
}

TEST_CASE("hash layout: a field that is not a total has its records rejected") {
  Fixture f;
  auto sink = f.sink({{"layout", std::string("hash")}, {"hash_key", std::string("totals")}});
  f.probe.command({"HSET", "totals", "H", "n/a"});
  const std::vector<Record> records = {cents_record("H", 10, 0, 0), cents_record("I", 10, 0, 1)};
  Batch b1 = batch_of(records, 0, 2);
  b1.spans = {{kTopic, 0, 0, 2}};
  CHECK_THROWS_AS(write(*sink, b1), PositionMismatch);
  Batch b2 = batch_of(records, 0, 2);
  b2.spans = {{kTopic, 0, 0, 2}};
  auto result = write_ok(*sink, b2);
  REQUIRE(result.rejections.size() == 1);
  CHECK(result.rejections[0].reason.find("field 'H' of hash 'totals' holds \"n/a\", not a decimal total") !=
        std::string::npos);
  CHECK(f.hget("totals", "I") == "0.10");
  CHECK(f.hget("totals", "H") == "n/a");
}

// MGET reads a key of another kind as nil and MSET wrote over it: a user's list became a
// total, and a total whose key was the positions hash replaced it after the totals were
// applied (the next run applied them again). Such records are rejected; nothing else moves.
TEST_CASE("a key of another kind is never written over: its records are rejected, the others counted") {
  Fixture f;
  auto sink = f.sink({{"key_prefix", std::string("t:")}, {"positions_key", std::string("t:positions")}});
  f.probe.command({"RPUSH", "t:L", "a user's list"});
  const std::vector<Record> records = {cents_record("A", 100, 0, 0), cents_record("L", 100, 0, 1),
                                       cents_record("positions", 100, 0, 2),  // the positions hash's key
                                       cents_record("A", 100, 0, 3)};
  auto read = [&] {
    Batch b = batch_of(records, 0, 4);
    b.spans = {{kTopic, 0, 0, 4}};
    return b;
  };
  Batch b1 = read();
  CHECK_THROWS_AS(write(*sink, b1), PositionMismatch);  // L: found only by the script
  CHECK(f.get("t:A") == "<nil>");
  Batch b2 = read();
  auto result = write_ok(*sink, b2);
  REQUIRE(result.rejections.size() == 2);
  CHECK(result.rejections[0].record.origin.offset == 1);
  CHECK(result.rejections[0].reason.find("key 't:L' holds a list, not a total") != std::string::npos);
  CHECK(result.rejections[1].record.origin.offset == 2);
  CHECK(result.rejections[1].reason.find("would be key 't:positions', the positions hash") != std::string::npos);
  CHECK(f.get("t:A") == "2.00");
  Reply kind = f.probe.command({"TYPE", "t:L"});
  CHECK(text_of(*kind) == "list");
  CHECK(sink->stored_position(kTopic, 0) == 4);
}

TEST_CASE("a lost reply: the retry finds the batch applied and counts nothing twice") {
  Fixture f;
  pipehost::redis::testing::ReplyDropper proxy(f.server.port());
  auto sink = f.sink({{"url", "127.0.0.1:" + std::to_string(proxy.port())}});
  std::map<std::string, std::int64_t> expected;
  auto records = generate(512, expected, 5);
  Batch b = batch_of(records, 0, records.size());
  proxy.drop_next_script_reply();
  bool done_called = false;
  CHECK_THROWS_AS(write(*sink, b), RetriableError);
  CHECK_FALSE(done_called);
  CHECK(proxy.dropped() == 1);
  check_totals(f, expected);  // Redis did apply it

  write_ok(*sink, b);  // the host's retry of the same batch
  check_totals(f, expected);
  CHECK(f.context.counter_value("records_already_applied") == 512);
  CHECK(f.context.counter_value("conflicts") == 0);
  Batch next;
  next.records.push_back(cents_record("ACC0", 1, 0, 100000));
  write_ok(*sink, next);
  CHECK(f.get("ACC0") == format_units(expected["ACC0"] + 1, 2));
}

TEST_CASE("a double amount with more decimals than scale is rounded, counted and said once") {
  Fixture f;
  auto sink = f.sink();
  Batch b;
  for (int i = 0; i < 3; ++i) b.records.push_back(transaction("R", Value(0.004), 0, i));
  b.records.push_back(transaction("R", Value(10.25), 0, 3));
  write_ok(*sink, b);
  CHECK(f.get("R") == "10.25");
  CHECK(f.context.counter_value("amounts_rounded") == 3);
  std::size_t warned = 0;
  for (const auto& line : f.context.logs) warned += line.find("holds 0.004") != std::string::npos;
  CHECK(warned == 1);
}

TEST_CASE("a lost reply to count_by's totals: the retry finds them applied and counts none twice") {
  Fixture f;
  pipehost::redis::testing::ReplyDropper proxy(f.server.port());
  auto sink = f.sink({{"url", "127.0.0.1:" + std::to_string(proxy.port())}});
  // What count_by leaves: one record per account with no source position, the spans kept.
  Batch totals;
  totals.records.push_back(cents_record("A", 12345, -1, -1));
  totals.records.push_back(cents_record("B", -99, -1, -1));
  totals.spans = {{kTopic, 0, 0, 300}, {kTopic, 1, 0, 200}};
  proxy.drop_next_script_reply();
  CHECK_THROWS_AS(write(*sink, totals), RetriableError);
  CHECK(f.get("A") == "123.45");  // Redis did apply it

  write_ok(*sink, totals);  // the host's retry of the same batch
  CHECK(f.get("A") == "123.45");
  CHECK(f.get("B") == "-0.99");
  CHECK(f.context.counter_value("records_already_applied") == 2);

  Batch next;
  next.records.push_back(cents_record("A", 5, -1, -1));
  next.spans = {{kTopic, 0, 300, 310}, {kTopic, 1, 200, 201}};
  write_ok(*sink, next);
  CHECK(f.get("A") == "123.50");
  // Another batch of the same partitions reaching back into what is applied (the stored
  // positions inside it) is refused whole: its totals fold records applied already.
  Batch overlapping;
  overlapping.records.push_back(cents_record("A", 7, -1, -1));
  overlapping.spans = {{kTopic, 0, 305, 320}};
  CHECK_THROWS_AS(write(*sink, overlapping), PositionMismatch);
  CHECK(f.get("A") == "123.50");
}

TEST_CASE("a password in the url is sent with AUTH; a wrong one is a fatal start error") {
  RedisServer server({"--requirepass", "s3cret"});
  pipehost::testing::TestContext context;
  std::string base = "redis://:s3cret@127.0.0.1:" + std::to_string(server.port());
  auto made = pipehost::testing::make<RedisSumSink>({{"url", base + "/1"}}, context);
  RedisSumSink& sink = *made;
  sink.start();
  Batch b;
  b.records.push_back(cents_record("J", 42, 0, 0));
  write_ok(sink, b);
  CHECK(sink.stored_position(kTopic, 0) == 1);

  std::string wrong = "redis://:nope@127.0.0.1:" + std::to_string(server.port());
  auto refused_sink = pipehost::testing::make<RedisSumSink>({{"url", wrong}}, context);
  RedisSumSink& refused = *refused_sink;
  CHECK_THROWS_WITH_AS(refused.start(), doctest::Contains("AUTH failed"), FatalError);
}
