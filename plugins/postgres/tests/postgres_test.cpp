// The postgres sink against a real PostgreSQL (DATABASE_URL, as scripts/services
// exports it), each test in its own tables, checked with SQL of its own.
#include <doctest/doctest.h>

#include <pqxx/pqxx>

#include <cstdlib>
#include <functional>
#include <random>
#include <set>

#include <pipehost/testing.hpp>

#include "postgres_sink.hpp"

using namespace pipehost;
using namespace pipehost::postgres;

namespace {

std::string database_url() {
  const char* url = std::getenv("DATABASE_URL");
  REQUIRE_MESSAGE(url, "DATABASE_URL is not set: run through scripts/test, or eval \"$(scripts/services env)\"");
  return url;
}

// A fresh trades table (seed 002's DDL) and positions table per test.
struct Fixture {
  std::string url = database_url();
  std::string table = "trades_" + std::to_string(std::random_device{}() % 1000000000);
  std::string positions = table + "_positions";
  testing::TestContext context;

  Fixture() {
    sql("CREATE TABLE " + table + " (id text, version bigint, counter_party text, book_id text, "
        "expired boolean, matures_at timestamptz, created_at timestamptz, PRIMARY KEY (id, version))");
  }
  ~Fixture() {
    try {
      sql("DROP TABLE IF EXISTS " + table + ", " + positions);
    } catch (...) {
    }
  }
  pqxx::result sql(const std::string& text) {
    pqxx::connection c(url);
    pqxx::work tx(c);
    auto r = tx.exec(text);
    tx.commit();
    return r;
  }
  std::unique_ptr<PostgresSink> sink(std::map<std::string, OptionValue> more = {}) {
    more.try_emplace("url", url);
    more.try_emplace("table", table);
    more.try_emplace("positions_table", positions);
    more.try_emplace("columns", StringMap{{"book", "book_id"}});
    auto s = testing::make<PostgresSink>(std::move(more), context);
    s->start();
    return s;
  }
};

Record trade(const std::string& id, std::int64_t version, const std::string& book = "B1",
             std::int32_t partition = 0, std::int64_t offset = -1) {
  static const auto schema = StructSchema::make(
      {"id", "version", "counter_party", "book", "expired", "matures_at", "created_at"});
  Record r;
  r.value = Struct{schema,
                   {Value(id), Value(version), Value("CP-7"), Value(book), Value(true),
                    Value("2031-02-03T04:05:06.123456789Z"), Value("2024-01-02T03:04:05.5+01:00")}};
  r.origin = {"trades", offset < 0 ? -1 : partition, offset};
  return r;
}

testing::SinkResult write(Sink& sink, Batch& batch) { return testing::write_batch(sink, batch); }

}  // namespace

TEST_CASE("postgres: one trade becomes one identical row; timestamps to the nearest microsecond") {
  Fixture f;
  auto sink = f.sink();
  Batch b;
  b.records.push_back(trade("T47654", 73, "B34", 0, 0));
  auto r = write(*sink, b);
  REQUIRE(r.done_calls == 1);
  CHECK(r.status.is_ok());
  auto rows = f.sql("SELECT id, version, counter_party, book_id, expired, "
                    "to_char(matures_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), "
                    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM " + f.table);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0][0].as<std::string>() == "T47654");
  CHECK(rows[0][1].as<std::int64_t>() == 73);
  CHECK(rows[0][2].as<std::string>() == "CP-7");
  CHECK(rows[0][3].as<std::string>() == "B34");
  CHECK(rows[0][4].as<bool>());
  CHECK(rows[0][5].as<std::string>() == "2031-02-03 04:05:06.123457");  // nanoseconds rounded, as PostgreSQL does
  CHECK(rows[0][6].as<std::string>() == "2024-01-02 02:04:05.500000");  // offset applied
  CHECK(sink->stored_position("trades", 0) == 1);
}

TEST_CASE("postgres: the first write of an (id, version) wins; another version is another row") {
  Fixture f;
  auto sink = f.sink();
  Batch b;
  b.records.push_back(trade("T1", 1, "first", 0, 0));
  b.records.push_back(trade("T1", 1, "second", 0, 1));  // in the same batch
  b.records.push_back(trade("T1", 2, "other version", 0, 2));
  write(*sink, b);
  Batch later;
  later.records.push_back(trade("T1", 1, "third", 0, 3));  // in a later batch
  write(*sink, later);
  auto rows = f.sql("SELECT version, book_id FROM " + f.table + " ORDER BY version");
  REQUIRE(rows.size() == 2);
  CHECK(rows[0][1].as<std::string>() == "first");
  CHECK(rows[1][1].as<std::string>() == "other version");
  CHECK(f.context.counter_value("rows_already_there") == 2);

  auto update = f.sink({{"on_conflict", std::string("update")}, {"positions_table", f.positions + "_u"}});
  Batch again;
  again.records.push_back(trade("T1", 1, "updated", 0, 0));
  again.records.push_back(trade("T1", 1, "updated twice", 0, 1));
  write(*update, again);
  CHECK(f.sql("SELECT book_id FROM " + f.table + " WHERE version = 1")[0][0].as<std::string>() == "updated twice");
  f.sql("DROP TABLE " + f.positions + "_u");
}

TEST_CASE("postgres: a redelivered batch is written once, also by a restarted sink") {
  Fixture f;
  std::vector<Record> records;
  for (int i = 0; i < 100; ++i) records.push_back(trade("T" + std::to_string(i), i, "B", i % 2, i / 2));
  auto sink = f.sink();
  Batch first;
  first.records = records;
  write(*sink, first);
  auto restarted = f.sink();
  Batch again;
  again.records = records;
  write(*restarted, again);
  CHECK(f.sql("SELECT count(*) FROM " + f.table)[0][0].as<int>() == 100);
  CHECK(f.context.counter_value("records_already_applied") == 100);
  CHECK(restarted->stored_position("trades", 0) == 50);
  CHECK(restarted->stored_position("trades", 1) == 50);
}

TEST_CASE("postgres: a value its column cannot take is rejected before anything is written") {
  Fixture f;
  auto sink = f.sink();
  Batch b;
  b.records.push_back(trade("T1", 1, "B", 0, 0));
  Record bad = trade("T2", 2, "B", 0, 1);
  bad.value.as<Struct>()->fields[1] = Value("seventy-three");
  b.records.push_back(bad);
  Record late = trade("T3", 3, "B", 0, 2);
  late.value.as<Struct>()->fields[5] = Value("next tuesday");
  b.records.push_back(late);
  b.spans = b.spans_from_records();
  sink->prepare(b);
  REQUIRE(b.rejections.size() == 2);
  CHECK(b.rejections[0].reason ==
        "postgres: field 'version' is a string, which column version (int8) cannot take");
  CHECK(b.rejections[1].reason.find("not an RFC 3339 timestamp for column matures_at") != std::string::npos);
  CHECK(f.sql("SELECT count(*) FROM " + f.table)[0][0].as<int>() == 0);
  CHECK_FALSE(sink->stored_position("trades", 0));
  b.rejections.clear();
  b.compact();
  int done = 0;
  sink->write(b, [&](Status s) { done += s.is_ok(); });
  CHECK(done == 1);
  CHECK(f.sql("SELECT count(*) FROM " + f.table)[0][0].as<int>() == 1);
  CHECK(sink->stored_position("trades", 0) == 3);
}

TEST_CASE("postgres: rows with no source position go with their batch: written once, even with no key") {
  // What an aggregate before the sink leaves (count_by's totals): rows that fold the
  // batch's records, so no offset says which are applied; the spans do.
  Fixture f;
  const std::string totals = f.table + "_totals";
  f.sql("CREATE TABLE " + totals + " (account text, total bigint)");
  auto sink = f.sink({{"table", totals}, {"columns", StringMap{}}});
  static const auto schema = StructSchema::make({"account", "total"});
  auto row = [](const std::string& account, std::int64_t total) {
    Record r;
    r.value = Struct{schema, {Value(account), Value(total)}};
    return r;
  };
  Batch batch;
  batch.records = {row("A", 12), row("B", 7)};
  batch.spans = {{"trades", 0, 0, 300}, {"trades", 1, 0, 200}};
  CHECK(write(*sink, batch).status.is_ok());
  Batch retried;  // the host's retry after a commit whose reply was lost
  retried.records = {row("A", 12), row("B", 7)};
  retried.spans = batch.spans;
  CHECK(write(*sink, retried).status.is_ok());
  CHECK(f.sql("SELECT count(*) FROM " + totals)[0][0].as<int>() == 2);
  CHECK(f.context.counter_value("records_already_applied") == 2);

  Batch overlapping;  // reaches back into what partition 0 applied: its rows fold both parts
  overlapping.records = {row("A", 1)};
  overlapping.spans = {{"trades", 0, 250, 320}};
  CHECK_THROWS_WITH_AS(write(*sink, overlapping),
                       doctest::Contains("holds position 300 for trades:0 but this batch covers 250..320"),
                       PositionMismatch);
  Batch next;
  next.records = {row("A", 1)};
  next.spans = {{"trades", 0, 300, 320}};
  CHECK(write(*sink, next).status.is_ok());
  CHECK(f.sql("SELECT sum(total) FROM " + totals)[0][0].as<int>() == 20);
  f.sql("DROP TABLE " + totals);
}

TEST_CASE("postgres: a database that lost writes makes the batch refused, not applied") {
  Fixture f;
  auto sink = f.sink();
  Batch first;
  for (int i = 0; i < 10; ++i) first.records.push_back(trade("T" + std::to_string(i), 1, "B", 0, i));
  first.spans = {{"trades", 0, 0, 10}};
  write(*sink, first);
  f.sql("UPDATE " + f.positions + " SET next_offset = 4");  // restored from an older backup
  f.sql("DELETE FROM " + f.table + " WHERE id IN ('T4','T5','T6','T7','T8','T9')");
  Batch next;
  next.records.push_back(trade("T10", 1, "B", 0, 10));
  next.spans = {{"trades", 0, 10, 11}};
  CHECK_THROWS_AS(write(*sink, next), PositionMismatch);
  CHECK(f.sql("SELECT count(*) FROM " + f.table)[0][0].as<int>() == 4);
  CHECK(sink->stored_position("trades", 0) == 4);
}

TEST_CASE("postgres: start-up errors name the table, the column and the fix") {
  Fixture f;
  CHECK_THROWS_WITH_AS(f.sink({{"columns", StringMap{{"book", "book_idx"}}}}),
                       doctest::Contains("maps field 'book' to column 'book_idx', which table"),
                       FatalError);
  CHECK_THROWS_WITH_AS(f.sink({{"table", std::string("no_such_table")}}),
                       doctest::Contains("table no_such_table does not exist"), FatalError);
  CHECK_THROWS_WITH_AS(f.sink({{"log_each", std::string("Stored {nope}")}}),
                       doctest::Contains("log_each names {nope}"), FatalError);
  auto unreachable = testing::StageHarness<PostgresSink>::problems(
      {{"table", std::string("t")}, {"url", std::string("postgresql://u:secret@127.0.0.1:1/db")}});
  CHECK(unreachable.empty());  // offline checks only; --connect and run reach the database
  testing::TestContext context;
  testing::TestChecker checker(context, true);
  PostgresConfig config;
  config.table = "t";
  config.url = "postgresql://u:secret@127.0.0.1:1/db";
  config.connect_timeout_ms = 1000;
  config.check(checker);
  REQUIRE(checker.unreachable_services.size() == 1);
  CHECK(checker.unreachable_services[0].find("postgresql://u:***@127.0.0.1:1/db") != std::string::npos);
  CHECK(checker.unreachable_services[0].find("secret") == std::string::npos);

  // validate --connect (and run, before anything starts) says the same at the options.
  testing::TestChecker connected(context, true);
  config.url = f.url;
  config.table = f.table;
  config.columns = {{"book", "book_idx"}};
  config.log_each = "Stored {nope}";
  config.check(connected);
  CHECK(connected.unreachable_services.empty());
  REQUIRE(connected.problems.size() == 2);
  CHECK(connected.problems[0].rfind("option 'columns': option columns maps field 'book' to column 'book_idx'", 0) == 0);
  CHECK(connected.problems[1] == "option 'log_each': log_each names {nope}, which is not a column of " + f.table);
}

TEST_CASE("postgres: log_each prints the seed's line for each row stored") {
  Fixture f;
  auto sink = f.sink({{"log_each", std::string("Stored trade with ID {id} and version {version}")}});
  Batch b;
  b.records.push_back(trade("T47654", 73, "B", 0, 0));
  b.records.push_back(trade("T47654", 73, "B", 0, 1));  // already there: not "stored"
  write(*sink, b);
  int lines = 0;
  for (const auto& l : f.context.logs) lines += l == "Stored trade with ID T47654 and version 73";
  CHECK(lines == 1);
}

TEST_CASE("postgres: values PostgreSQL would refuse are rejected at prepare, the rest written") {
  // Each of these failed the whole batch's COPY (a fatal error, again after every restart).
  Fixture f;
  f.sql("DROP TABLE " + f.table);
  f.sql("CREATE TABLE " + f.table + " (id text PRIMARY KEY, n int4, small int2, amount numeric, "
        "u uuid, doc jsonb, at timestamptz)");
  testing::TestContext context;
  auto sink = testing::make<PostgresSink>(
      {{"url", f.url}, {"table", f.table}, {"positions_table", f.positions}}, context);
  sink->start();
  static const auto schema = StructSchema::make({"id", "n", "small", "amount", "u", "doc", "at"});
  auto row = [&](std::int64_t offset, std::function<void(std::vector<Value>&)> edit) {
    Record r;
    std::vector<Value> v = {Value("K" + std::to_string(offset)), Value(std::int64_t{7}), Value(std::int64_t{1}),
                            Value("12.50"), Value("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                            Value(Struct{StructSchema::make({"x"}), {Value("y")}}), Value(Timestamp{0})};
    edit(v);
    r.value = Struct{schema, std::move(v)};
    r.origin = {"t", 0, offset};
    return r;
  };
  struct Case {
    std::function<void(std::vector<Value>&)> edit;
    const char* reason;
  };
  const std::vector<Case> cases = {
      {[](auto& v) { v[0] = Value(); }, "field 'id' is missing, and column id is NOT NULL"},
      {[](auto& v) { v[0] = Value(std::string("a\0b", 3)); }, "holds a NUL character, which PostgreSQL text"},
      {[](auto& v) { v[1] = Value(std::int64_t{1} << 40); }, "out of range for column n (int4)"},
      {[](auto& v) { v[2] = Value(std::int64_t{40000}); }, "out of range for column small (int2)"},
      {[](auto& v) { v[3] = Value("1-2"); }, "field 'amount' is a string"},
      {[](auto& v) { v[3] = Value("1e"); }, "field 'amount' is a string"},
      {[](auto& v) { v[4] = Value("not-a-uuid"); }, "not a UUID for column u"},
      {[](auto& v) { v[5] = Value(Struct{StructSchema::make({"x"}), {Value(std::string("\0", 1))}}); },
       "which jsonb cannot store"},
      {[](auto& v) { v[6] = Value("0000-01-01T00:00:00Z"); }, "column at"},
      {[](auto& v) { v[6] = Value(Timestamp{std::int64_t{1} << 62}); }, "outside years 1-9999"},
  };
  Batch b;
  for (std::size_t i = 0; i < cases.size(); ++i) b.records.push_back(row(static_cast<std::int64_t>(i), cases[i].edit));
  b.records.push_back(row(100, [](auto& v) { v[3] = Value("-1.5e3"); }));  // valid, as the rest
  b.records.push_back(row(101, [](auto&) {}));
  b.spans = b.spans_from_records();
  sink->prepare(b);
  REQUIRE(b.rejections.size() == cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(cases[i].reason);
    CHECK(b.rejections[i].reason.find(cases[i].reason) != std::string::npos);
  }
  b.rejections.clear();
  b.compact();
  int done = 0;
  sink->write(b, [&](Status s) { done += s.is_ok(); });
  CHECK(done == 1);
  CHECK(f.sql("SELECT count(*) FROM " + f.table)[0][0].as<int>() == 2);
  CHECK(f.sql("SELECT amount FROM " + f.table + " WHERE id = 'K100'")[0][0].as<std::string>() == "-1500");
}

TEST_CASE("postgres: rows the table refuses are found, and rejected when the batch is read again") {
  // varchar(n), numeric(p, s), CHECK and foreign keys: only PostgreSQL knows. The batch
  // fails; the sink finds which rows (each alone, rolled back), and has the batch read
  // again so that they are rejected before any position past them is stored.
  Fixture f;
  const std::string books = f.table + "_books";
  f.sql("DROP TABLE " + f.table);
  f.sql("CREATE TABLE " + books + " (name text PRIMARY KEY)");
  f.sql("INSERT INTO " + books + " VALUES ('B1')");
  f.sql("CREATE TABLE " + f.table + " (id varchar(5) PRIMARY KEY, version bigint CHECK (version >= 0), "
        "amount numeric(5, 2), book text REFERENCES " + books + " (name) DEFERRABLE INITIALLY DEFERRED)");
  testing::TestContext context;
  auto sink = testing::make<PostgresSink>(
      {{"url", f.url}, {"table", f.table}, {"positions_table", f.positions}}, context);
  sink->start();
  static const auto schema = StructSchema::make({"id", "version", "amount", "book"});
  auto row = [&](std::int64_t offset, std::string id, std::int64_t version, std::string amount,
                 std::string book) {
    Record r;
    r.value = Struct{schema, {Value(std::move(id)), Value(version), Value(std::move(amount)),
                              Value(std::move(book))}};
    r.origin = {"t", 0, offset};
    return r;
  };
  std::vector<Record> records = {
      row(0, "K0", 1, "1.50", "B1"),      row(1, "TOOLONG", 1, "1.00", "B1"),
      row(2, "K2", -4, "1.00", "B1"),     row(3, "K3", 1, "12345.67", "B1"),
      row(4, "K4", 1, "1.00", "nowhere"), row(5, "K5", 2, "999.99", "B1")};
  auto batch = [&] {
    Batch b;
    b.records = records;
    b.spans = {{"t", 0, 0, 6}};
    return b;
  };
  Batch first = batch();
  CHECK_THROWS_AS(write(*sink, first), PositionMismatch);
  CHECK(f.sql("SELECT count(*) FROM " + f.table)[0][0].as<int>() == 0);
  CHECK_FALSE(sink->stored_position("t", 0));

  Batch again = batch();  // what the rewound source reads
  auto result = write(*sink, again);
  CHECK(result.status.is_ok());
  REQUIRE(result.rejections.size() == 4);
  const std::vector<std::string> reasons = {"value too long for type character varying(5)",
                                            "violates check constraint",
                                            "numeric field overflow",
                                            "violates foreign key constraint"};
  for (std::size_t k = 0; k < reasons.size(); ++k) {
    CAPTURE(result.rejections[k].reason);
    CHECK(result.rejections[k].record.origin.offset == static_cast<std::int64_t>(k + 1));
    CHECK(result.rejections[k].reason.find("postgres: table " + f.table + " refused the row: ") == 0);
    CHECK(result.rejections[k].reason.find(reasons[k]) != std::string::npos);
  }
  CHECK(f.sql("SELECT string_agg(id, ',' ORDER BY id) FROM " + f.table)[0][0].as<std::string>() == "K0,K5");
  CHECK(sink->stored_position("t", 0) == 6);
  f.sql("DROP TABLE " + f.table + ", " + books);
}

TEST_CASE("postgres: a row a stage made that the table refuses is rejected by its key when read again") {
  // count_by's totals have no source position: the refused one is remembered by its
  // primary key (the defect: it was skipped, and the batch failed the pipeline for good).
  Fixture f;
  const std::string totals = f.table + "_counts";
  f.sql("CREATE TABLE " + totals + " (food text PRIMARY KEY CHECK (length(food) < 6), n bigint)");
  auto sink = f.sink({{"table", totals}, {"columns", StringMap{}}});
  static const auto schema = StructSchema::make({"food", "n"});
  auto batch = [] {
    auto row = [](const std::string& food, std::int64_t n) {
      Record r;
      r.value = Struct{schema, {Value(food), Value(n)}};
      return r;
    };
    Batch b;
    b.records = {row("egg", 3), row("batter", 1), row("milk", 2)};
    b.spans = {{"food", 0, 0, 6}};
    return b;
  };
  Batch first = batch();
  CHECK_THROWS_AS(write(*sink, first), PositionMismatch);
  Batch again = batch();  // what the rewound source and count_by make again
  auto result = write(*sink, again);
  CHECK(result.status.is_ok());
  REQUIRE(result.rejections.size() == 1);
  CHECK(result.rejections[0].reason.find("refused the row with key \"batter\": ") != std::string::npos);
  CHECK(result.rejections[0].reason.find("violates check constraint") != std::string::npos);
  CHECK(f.sql("SELECT string_agg(food || '=' || n, ',' ORDER BY food) FROM " + totals)[0][0].as<std::string>() ==
        "egg=3,milk=2");
  CHECK(sink->stored_position("food", 0) == 6);
  f.sql("DROP TABLE " + totals);
}

TEST_CASE("postgres: a row a trigger raises an exception for is refused; a trigger failing every batch is fatal") {
  // RAISE EXCEPTION (SQLSTATE P0001) for one row's values: that row is refused, as a
  // CHECK would. One that no row raises alone (here: on the batch's size) stays fatal.
  Fixture f;
  f.sql("CREATE FUNCTION " + f.table + "_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.book_id = 'blocked' THEN RAISE EXCEPTION 'book % is blocked', NEW.book_id; END IF; "
        "IF (SELECT count(*) FROM pipehost_load) > 100 THEN RAISE EXCEPTION 'batch too big'; END IF; "
        "RETURN NEW; END $$");
  f.sql("CREATE TRIGGER guard BEFORE INSERT ON " + f.table + " FOR EACH ROW EXECUTE FUNCTION " +
        f.table + "_guard()");
  auto sink = f.sink();
  auto batch = [&](std::int64_t first, int n, std::int64_t blocked) {
    Batch b;
    for (int k = 0; k < n; ++k)
      b.records.push_back(trade("T" + std::to_string(first + k), 1,
                                first + k == blocked ? "blocked" : "B1", 0, first + k));
    b.spans = {{"trades", 0, first, first + n}};
    return b;
  };
  Batch first = batch(0, 5, 3);
  CHECK_THROWS_AS(write(*sink, first), PositionMismatch);
  Batch again = batch(0, 5, 3);  // what the rewound source reads
  auto result = write(*sink, again);
  CHECK(result.status.is_ok());
  REQUIRE(result.rejections.size() == 1);
  CHECK(result.rejections[0].record.origin.offset == 3);
  CHECK(result.rejections[0].reason.find("book blocked is blocked") != std::string::npos);
  CHECK(f.sql("SELECT count(*) FROM " + f.table)[0][0].as<int>() == 4);
  Batch big = batch(5, 101, -1);
  CHECK_THROWS_WITH_AS(write(*sink, big), doctest::Contains("batch too big"), FatalError);
  CHECK(sink->stored_position("trades", 0) == 5);
  f.sql("DROP TABLE " + f.table + "; DROP FUNCTION " + f.table + "_guard()");
}

TEST_CASE("postgres: a statement cancelled or a server out of resources is retried, not fatal") {
  // 57014 is what statement_timeout on a slow server gives, 53300 too many connections.
  Fixture f;
  f.sql("CREATE FUNCTION " + f.table + "_busy() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.book_id = 'cancel' THEN RAISE EXCEPTION 'canceling statement due to statement timeout' "
        "USING ERRCODE = 'query_canceled'; END IF; "
        "IF NEW.book_id = 'crowd' THEN RAISE EXCEPTION 'too many' USING ERRCODE = 'too_many_connections'; END IF; "
        "RETURN NEW; END $$");
  f.sql("CREATE TRIGGER busy BEFORE INSERT ON " + f.table + " FOR EACH ROW EXECUTE FUNCTION " +
        f.table + "_busy()");
  auto sink = f.sink();
  for (const std::string book : {"cancel", "crowd"}) {
    Batch b;
    b.records = {trade("T1", 1, book, 0, 0)};
    b.spans = {{"trades", 0, 0, 1}};
    CHECK_THROWS_AS(write(*sink, b), RetriableError);
  }
  Batch ok;
  ok.records = {trade("T1", 1, "B1", 0, 0)};
  ok.spans = {{"trades", 0, 0, 1}};
  CHECK(write(*sink, ok).status.is_ok());
  CHECK(f.sql("SELECT count(*) FROM " + f.table)[0][0].as<int>() == 1);
  f.sql("DROP TABLE " + f.table + "; DROP FUNCTION " + f.table + "_busy()");
}

TEST_CASE("postgres: a batch prepared before a reconnect found the table altered is read again, not written") {
  Fixture f;
  auto sink = f.sink({{"url", f.url + "?application_name=" + f.table}});
  Batch first;
  first.records.push_back(trade("T0", 1, "B", 0, 0));
  first.spans = {{"trades", 0, 0, 1}};
  write(*sink, first);
  Batch next;
  next.records.push_back(trade("T1", 1, "B", 0, 1));
  next.spans = {{"trades", 0, 1, 2}};
  sink->prepare(next);
  // The connection breaks, and a migration swaps two text columns' names meanwhile: the
  // lines prepared for the old order would put the book into counter_party.
  f.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" + f.table + "'");
  f.sql("ALTER TABLE " + f.table + " RENAME counter_party TO swap");
  f.sql("ALTER TABLE " + f.table + " RENAME book_id TO counter_party");
  f.sql("ALTER TABLE " + f.table + " RENAME swap TO book_id");
  bool read_again = false;
  for (int attempt = 0; attempt < 3 && !read_again; ++attempt) {  // as the host retries write
    try {
      sink->write(next, [](Status) {});
    } catch (const PositionMismatch& e) {
      read_again = true;
      CHECK(std::string(e.what()).find("columns of " + f.table + " changed") != std::string::npos);
    } catch (const RetriableError&) {
    }
  }
  REQUIRE(read_again);
  CHECK(f.sql("SELECT count(*) FROM " + f.table + " WHERE id = 'T1'")[0][0].as<int>() == 0);
  Batch again;  // read again: prepared for the table as it is now
  again.records.push_back(trade("T1", 1, "B", 0, 1));
  again.spans = {{"trades", 0, 1, 2}};
  CHECK(write(*sink, again).rejections.empty());
  auto row = f.sql("SELECT book_id, counter_party FROM " + f.table + " WHERE id = 'T1'");
  REQUIRE(row.size() == 1);
  CHECK(row[0][0].as<std::string>() == "B");
  CHECK(row[0][1].as<std::string>() == "CP-7");
}

TEST_CASE("postgres: positions are per table: a pipeline pointed at a new table writes it from the start") {
  Fixture f;
  std::vector<Record> records;
  for (int i = 0; i < 10; ++i) records.push_back(trade("T" + std::to_string(i), i, "B", 0, i));
  Batch first;
  first.records = records;
  write(*f.sink(), first);
  const std::string copy = f.table + "_copy";
  f.sql("CREATE TABLE " + copy + " (LIKE " + f.table + " INCLUDING ALL)");
  auto to_copy = f.sink({{"table", copy}});  // the same pipeline and positions table
  CHECK(to_copy->stored_position("trades", 0) == std::nullopt);
  Batch again;
  again.records = records;
  write(*to_copy, again);
  CHECK(f.sql("SELECT count(*) FROM " + copy)[0][0].as<int>() == 10);
  CHECK(f.sink()->stored_position("trades", 0) == 10);  // the first table's position stays
  f.sql("DROP TABLE " + copy);
}

TEST_CASE("postgres: a positions table of the earlier layout gets the table in its key; its rows are kept") {
  Fixture f;
  f.sql("CREATE TABLE " + f.positions + " (pipeline text, topic text, partition integer, "
        "next_offset bigint NOT NULL, PRIMARY KEY (pipeline, topic, partition))");
  f.sql("INSERT INTO " + f.positions + " VALUES ('" + std::string(f.context.pipeline()) +
        "', 'trades', 0, 7), ('another-pipeline', 'trades', 0, 3)");
  auto sink = f.sink();
  CHECK(sink->stored_position("trades", 0) == 7);  // claimed by the table this pipeline writes
  Batch b;
  b.records.push_back(trade("T1", 1, "B", 0, 7));
  write(*sink, b);
  CHECK(sink->stored_position("trades", 0) == 8);
  auto rows = f.sql("SELECT pipeline, destination, next_offset FROM " + f.positions + " ORDER BY pipeline");
  REQUIRE(rows.size() == 2);
  CHECK(rows[0][0].as<std::string>() == "another-pipeline");
  CHECK(rows[0][1].as<std::string>() == "");  // its own sink claims it when it starts
  CHECK(rows[1][1].as<std::string>() == f.table);
  CHECK(rows[1][2].as<std::int64_t>() == 8);
}

TEST_CASE("postgres: a row breaking a unique index besides the primary key is refused, not dropped unsaid") {
  // A bare ON CONFLICT DO NOTHING took every unique index as its target: the row was
  // skipped, counted as already there, and the position moved past it.
  Fixture f;
  f.sql("CREATE UNIQUE INDEX " + f.table + "_book ON " + f.table + " (book_id)");
  auto sink = f.sink();
  Batch first;
  first.records = {trade("T1", 1, "B1", 0, 0)};
  first.spans = {{"trades", 0, 0, 1}};
  CHECK(write(*sink, first).status.is_ok());
  auto second = [] {
    Batch b;
    b.records = {trade("T1", 1, "B9", 0, 1), trade("T2", 1, "B1", 0, 2), trade("T3", 1, "B3", 0, 3)};
    b.spans = {{"trades", 0, 1, 4}};
    return b;
  };
  Batch once = second();
  CHECK_THROWS_AS(write(*sink, once), PositionMismatch);
  Batch again = second();
  auto result = write(*sink, again);
  REQUIRE(result.rejections.size() == 1);
  CHECK(result.rejections[0].record.origin.offset == 2);
  CHECK(result.rejections[0].reason.find("duplicate key value violates unique constraint") != std::string::npos);
  // T1 again is the first write winning (the primary key), not a refusal.
  CHECK(f.sql("SELECT string_agg(id || '/' || book_id, ',' ORDER BY id) FROM " + f.table)[0][0].as<std::string>() ==
        "T1/B1,T3/B3");
  CHECK(sink->stored_position("trades", 0) == 4);
}

TEST_CASE("postgres: tables and columns named as SQL names them: schemas, upper case, reserved words, computed columns") {
  Fixture f;
  const std::string schema = f.table + "_s";
  f.sql("CREATE SCHEMA " + schema);
  f.sql("CREATE TABLE " + schema + ".\"Orders\" (\"Id\" text PRIMARY KEY, \"user\" text, \"order\" bigint, "
        "seen text, doubled bigint GENERATED ALWAYS AS (\"order\" * 2) STORED, "
        "n bigint GENERATED ALWAYS AS IDENTITY)");
  testing::TestContext context;
  auto sink = testing::make<PostgresSink>({{"url", f.url}, {"table", schema + ".\"Orders\""},
                                           {"positions_table", f.positions}},
                                          context);
  sink->start();
  static const auto fields = StructSchema::make({"Id", "user", "order", "seen"});
  Batch b;
  b.records.emplace_back().value = Struct{fields, {Value("A"), Value("ann"), Value(std::int64_t{21}),
                                                   Value(Timestamp{1700000000123456})}};
  b.records.back().origin = {"t", 0, 0};
  b.spans = {{"t", 0, 0, 1}};
  CHECK(write(*sink, b).status.is_ok());
  auto row = f.sql("SELECT \"Id\", \"user\", \"order\", seen, doubled, n FROM " + schema + ".\"Orders\"");
  REQUIRE(row.size() == 1);
  CHECK(row[0][1].as<std::string>() == "ann");
  CHECK(row[0][2].as<std::int64_t>() == 21);
  CHECK(row[0][3].as<std::string>() == "2023-11-14T22:13:20.123456Z");  // a timestamp into text: RFC 3339
  CHECK(row[0][4].as<std::int64_t>() == 42);
  CHECK(row[0][5].as<std::int64_t>() == 1);

  // A primary key the table computes itself: each record is a new row.
  f.sql("CREATE TABLE " + schema + ".events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text)");
  auto events = testing::make<PostgresSink>({{"url", f.url}, {"table", schema + ".events"},
                                             {"positions_table", f.positions}},
                                            context);
  events->start();
  static const auto notes = StructSchema::make({"note"});
  Batch e;
  for (int i = 0; i < 2; ++i) {
    e.records.emplace_back().value = Struct{notes, {Value("same")}};
    e.records.back().origin = {"e", 0, i};
  }
  e.spans = {{"e", 0, 0, 2}};
  CHECK(write(*events, e).status.is_ok());
  CHECK(f.sql("SELECT count(*) FROM " + schema + ".events")[0][0].as<int>() == 2);
  f.sql("DROP SCHEMA " + schema + " CASCADE");
}

TEST_CASE("postgres: a write waiting on a lock another session holds is retried after lock_timeout_ms") {
  Fixture f;
  auto sink = f.sink({{"lock_timeout_ms", std::int64_t{1000}}});
  pqxx::connection holder(f.url);
  pqxx::work open(holder);  // a psql left in a transaction
  open.exec("LOCK TABLE " + f.table + " IN ACCESS EXCLUSIVE MODE");
  Batch b;
  b.records = {trade("T1", 1, "B1", 0, 0)};
  b.spans = {{"trades", 0, 0, 1}};
  CHECK_THROWS_WITH_AS(write(*sink, b), doctest::Contains("lock timeout"), RetriableError);
  open.abort();
  Batch again;
  again.records = {trade("T1", 1, "B1", 0, 0)};
  again.spans = {{"trades", 0, 0, 1}};
  CHECK(write(*sink, again).status.is_ok());
  CHECK(f.sql("SELECT count(*) FROM " + f.table)[0][0].as<int>() == 1);
}

// libpq speaks the database's encoding unless told otherwise: in a LATIN1 database the
// sink's UTF-8 was stored byte by byte, "é" as "Ã©".
TEST_CASE("postgres: text is stored as the characters it holds in a database that is not UTF-8") {
  const std::string url = database_url();
  const std::string latin1_url = url.substr(0, url.rfind('/')) + "/pipehost_test_latin1";
  {
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    if (tx.exec("SELECT 1 FROM pg_database WHERE datname = 'pipehost_test_latin1'").empty())
      tx.exec("CREATE DATABASE pipehost_test_latin1 ENCODING 'LATIN1' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'");
  }
  const std::string table = "trades_" + std::to_string(std::random_device{}() % 1000000000);
  auto sql = [&](const std::string& text) {
    pqxx::connection c(latin1_url);
    c.set_client_encoding("UTF8");
    pqxx::work tx(c);
    auto r = tx.exec(text);
    tx.commit();
    return r;
  };
  sql("CREATE TABLE " + table + " (id text, version bigint, counter_party text, book_id text, "
      "expired boolean, matures_at timestamptz, created_at timestamptz, PRIMARY KEY (id, version))");
  testing::TestContext context;
  auto sink = testing::make<PostgresSink>({{"url", latin1_url}, {"table", table}, {"positions_table", table + "_positions"},
                                           {"columns", StringMap{{"book", "book_id"}}}},
                                          context);
  sink->start();
  Batch b;
  b.records.push_back(trade("T1", 1, "B1", 0, 0));
  b.records[0].value.as<Struct>()->fields[2] = Value("CP-é");
  auto r = write(*sink, b);
  CHECK(r.status.is_ok());
  auto rows = sql("SELECT counter_party, length(counter_party) FROM " + table);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0][0].as<std::string>() == "CP-é");
  CHECK(rows[0][1].as<int>() == 4);
  sql("DROP TABLE " + table + ", " + table + "_positions");
}

// A positions table made ahead of time without the key the upsert names: said at start,
// naming the table and the fix (the first write failed, naming neither).
TEST_CASE("postgres: a positions table without its key is refused at start, naming the fix") {
  Fixture f;
  f.sql("CREATE TABLE " + f.positions + " (pipeline text, destination text, topic text, partition integer, "
        "next_offset bigint NOT NULL)");
  CHECK_THROWS_WITH_AS(f.sink(), doctest::Contains("has no primary key on (pipeline, destination, topic, partition)"),
                       FatalError);
}

TEST_CASE("postgres: a column the record has no field for takes its DEFAULT in a new row, and is kept by an update") {
  Fixture f;
  const std::string events = f.table + "_events";
  f.sql("CREATE TABLE " + events + " (id bigserial PRIMARY KEY, note text NOT NULL, "
        "stored_at timestamptz NOT NULL DEFAULT now(), tag text DEFAULT 'none', remark text)");
  testing::TestContext context;
  auto sink = testing::make<PostgresSink>({{"url", f.url}, {"table", events}, {"positions_table", f.positions},
                                           {"log_each", std::string("stored {id} {tag}")}},
                                          context);
  sink->start();
  static const auto note_only = StructSchema::make({"note"});
  static const auto with_tag = StructSchema::make({"note", "tag"});
  static const auto no_note = StructSchema::make({"tag"});
  static const auto nothing = StructSchema::make({"other"});
  Batch b;
  b.records.emplace_back().value = Struct{note_only, {Value("a")}};
  b.records.emplace_back().value = Struct{with_tag, {Value("b"), Value()}};  // an explicit null stays null
  b.records.emplace_back().value = Struct{with_tag, {Value("c"), Value("red")}};
  b.records.emplace_back().value = Struct{note_only, {Value("d")}};
  b.records.emplace_back().value = Struct{no_note, {Value("blue")}};
  b.records.emplace_back().value = Struct{nothing, {Value("x")}};
  for (std::size_t i = 0; i < b.records.size(); ++i) b.records[i].origin = {"e", 0, static_cast<std::int64_t>(i)};
  auto result = write(*sink, b);
  CHECK(result.status.is_ok());
  REQUIRE(result.rejections.size() == 2);
  CHECK(result.rejections[0].reason ==
        "postgres: the record has no field 'note', and column note is NOT NULL with no DEFAULT");
  CHECK(result.rejections[1].reason.find("no field 'note'") != std::string::npos);
  auto rows = f.sql("SELECT id, note, stored_at IS NOT NULL, coalesce(tag, '(null)') FROM " + events + " ORDER BY note");
  REQUIRE(rows.size() == 4);
  std::vector<std::string> got;
  for (const auto& row : rows) got.push_back(row[1].as<std::string>() + ":" + row[3].as<std::string>());
  std::string all;
  for (const auto& g : got) all += g + " ";
  CHECK(all == "a:none b:(null) c:red d:none ");
  std::set<std::int64_t> ids;
  for (const auto& row : rows) {
    CHECK(row[2].as<bool>());
    ids.insert(row[0].as<std::int64_t>());
  }
  CHECK(ids.size() == 4);  // a new serial id each
  CHECK(std::find(context.logs.begin(), context.logs.end(), "stored " + rows[3][0].as<std::string>() + " none") !=
        context.logs.end());
  CHECK(sink->stored_position("e", 0) == 6);

  // on_conflict = update: the columns a record has fields for are replaced, the others kept.
  auto update = testing::make<PostgresSink>({{"url", f.url}, {"table", events}, {"positions_table", f.positions},
                                             {"on_conflict", std::string("update")}},
                                            context);
  update->start();
  f.sql("UPDATE " + events + " SET remark = 'kept', stored_at = '2020-01-01Z' WHERE note = 'a'");
  const std::int64_t a = f.sql("SELECT id FROM " + events + " WHERE note = 'a'")[0][0].as<std::int64_t>();
  static const auto id_note = StructSchema::make({"id", "note"});
  static const auto id_tag = StructSchema::make({"id", "tag", "note"});
  Batch u;
  u.records.emplace_back().value = Struct{id_tag, {Value(a), Value("first"), Value("a1")}};
  u.records.emplace_back().value = Struct{id_note, {Value(a), Value("a2")}};  // the last of its key
  u.records.emplace_back().value = Struct{id_tag, {Value(std::int64_t{1000}), Value("new"), Value("z")}};
  // A new key whose records give different fields: the row as they would leave it one
  // after the other, whatever batch they come in (the last record's shape lost the first's).
  static const auto id_remark = StructSchema::make({"id", "remark", "note"});
  u.records.emplace_back().value = Struct{id_remark, {Value(std::int64_t{1001}), Value("r1"), Value("n1")}};
  u.records.emplace_back().value = Struct{id_note, {Value(std::int64_t{1001}), Value("n2")}};
  for (std::size_t i = 0; i < u.records.size(); ++i) u.records[i].origin = {"u", 0, static_cast<std::int64_t>(i)};
  CHECK(write(*update, u).status.is_ok());
  auto merged = f.sql("SELECT note, tag, remark FROM " + events + " WHERE id = 1001");
  REQUIRE(merged.size() == 1);
  CHECK(merged[0][0].as<std::string>() == "n2");
  CHECK(merged[0][1].as<std::string>() == "none");  // no record gave one: the column's DEFAULT
  CHECK(merged[0][2].as<std::string>() == "r1");    // the first record's, which the last leaves
  auto kept = f.sql("SELECT note, tag, remark, stored_at = '2020-01-01Z' FROM " + events + " WHERE id = " +
                    std::to_string(a));
  REQUIRE(kept.size() == 1);
  CHECK(kept[0][0].as<std::string>() == "a2");
  CHECK(kept[0][1].as<std::string>() == "first");  // the last record has no tag: the one before gave it
  CHECK(kept[0][2].as<std::string>() == "kept");
  CHECK(kept[0][3].as<bool>());
  auto added = f.sql("SELECT note, tag, stored_at IS NOT NULL FROM " + events + " WHERE id = 1000");
  REQUIRE(added.size() == 1);
  CHECK(added[0][0].as<std::string>() == "z");
  CHECK(added[0][1].as<std::string>() == "new");
  CHECK(added[0][2].as<bool>());
  f.sql("DROP TABLE " + events);
}

TEST_CASE("postgres: to update, a record without a NOT NULL column's field keeps the row's; a new row is refused") {
  Fixture f;
  const std::string accounts = f.table + "_accounts";
  f.sql("CREATE TABLE " + accounts + " (id text PRIMARY KEY, owner text NOT NULL, balance bigint)");
  f.sql("INSERT INTO " + accounts + " VALUES ('A', 'ann', 1)");
  testing::TestContext context;
  auto sink = testing::make<PostgresSink>({{"url", f.url}, {"table", accounts}, {"positions_table", f.positions},
                                           {"on_conflict", std::string("update")},
                                           {"log_each", std::string("stored {id} of {owner}")}},
                                          context);
  sink->start();
  static const auto balance_only = StructSchema::make({"id", "balance"});
  static const auto whole = StructSchema::make({"id", "owner", "balance"});
  std::vector<Record> records(5);
  records[0].value = Struct{balance_only, {Value("A"), Value(std::int64_t{2})}};  // the row there keeps its owner
  records[1].value = Struct{whole, {Value("B"), Value("bob"), Value(std::int64_t{3})}};
  records[2].value = Struct{balance_only, {Value("B"), Value(std::int64_t{4})}};  // after B's whole record
  records[3].value = Struct{balance_only, {Value("C"), Value(std::int64_t{5})}};  // a new row with no owner
  records[4].value = Struct{balance_only, {Value("A"), Value(std::int64_t{6})}};
  for (std::size_t i = 0; i < records.size(); ++i) records[i].origin = {"a", 0, static_cast<std::int64_t>(i)};
  auto batch = [&] {
    Batch b;
    b.records = records;
    b.spans = {{"a", 0, 0, 5}};
    return b;
  };
  Batch first = batch();
  CHECK_THROWS_AS(write(*sink, first), PositionMismatch);  // C's row breaks NOT NULL: found, then rejected
  Batch again = batch();
  auto result = write(*sink, again);
  CHECK(result.status.is_ok());
  REQUIRE(result.rejections.size() == 1);
  CHECK(result.rejections[0].record.origin.offset == 3);
  CHECK(result.rejections[0].reason.find("not-null constraint") != std::string::npos);
  CHECK(f.sql("SELECT string_agg(id || ':' || owner || ':' || balance, ',' ORDER BY id) FROM " + accounts)[0][0]
            .as<std::string>() == "A:ann:6,B:bob:4");
  CHECK(std::find(context.logs.begin(), context.logs.end(), "stored A of ann") != context.logs.end());
  CHECK(sink->stored_position("a", 0) == 5);

  // To ignore, such a record could only ever be a new row: rejected at once.
  auto ignore = testing::make<PostgresSink>({{"url", f.url}, {"table", accounts}, {"positions_table", f.positions + "_i"}},
                                            context);
  ignore->start();
  Batch b;
  b.records.emplace_back().value = Struct{balance_only, {Value("D"), Value(std::int64_t{6})}};
  b.records.back().origin = {"a", 0, 0};
  auto refused = write(*ignore, b);
  REQUIRE(refused.rejections.size() == 1);
  CHECK(refused.rejections[0].reason ==
        "postgres: the record has no field 'owner', and column owner is NOT NULL with no DEFAULT");
  f.sql("DROP TABLE " + accounts + ", " + f.positions + "_i");
}

TEST_CASE("postgres: times into date, timestamp and timestamptz columns as PostgreSQL reads the same text") {
  Fixture f;
  const std::string times = f.table + "_times";
  f.sql("CREATE TABLE " + times + " (id bigint PRIMARY KEY, t text, d date, ts timestamp, tz timestamptz)");
  testing::TestContext context;
  auto sink = testing::make<PostgresSink>({{"url", f.url}, {"table", times}, {"positions_table", f.positions}},
                                          context);
  sink->start();
  static const auto schema = StructSchema::make({"id", "t", "d", "ts", "tz"});
  const std::vector<std::string> texts = {"2024-03-01", "2024-03-01T00:30:00+01:00", "2024-02-29T23:30:00.25Z",
                                          "2023-12-31T22:15:00.123456-05:30", "2024-03-01T00:30:00.123456789+05:30",
                                          "2024-12-31T23:59:59.9999999Z", "2024-05-01T12:34:56.1234564Z"};
  Batch b;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    b.records.emplace_back().value =
        Struct{schema, {Value(static_cast<std::int64_t>(i)), Value(texts[i]), Value(texts[i]), Value(texts[i]),
                        Value(texts[i])}};
    b.records.back().origin = {"times", 0, static_cast<std::int64_t>(i)};
  }
  b.records.emplace_back().value = Struct{schema, {Value(std::int64_t{9}), Value("2024-13-01"), Value("2024-13-01"),
                                                   Value(), Value()}};
  b.records.back().origin = {"times", 0, 9};
  auto result = write(*sink, b);
  CHECK(result.status.is_ok());
  REQUIRE(result.rejections.size() == 1);
  CHECK(result.rejections[0].reason ==
        "postgres: field 'd' is \"2024-13-01\", not an RFC 3339 timestamp or a date (2024-03-01) for column d");
  // PostgreSQL's own cast of each text (a date alone is midnight UTC to timestamptz, as
  // this session's time zone says) against what the sink stored.
  auto rows = f.sql("SET TIME ZONE 'UTC'; SELECT t, d = t::date, ts = t::timestamp, tz = t::timestamptz, d, ts FROM " +
                    times + " ORDER BY id");
  REQUIRE(rows.size() == texts.size());
  for (const auto& row : rows) {
    CAPTURE(row[0].as<std::string>());
    CAPTURE(row[4].as<std::string>());
    CAPTURE(row[5].as<std::string>());
    CHECK(row[1].as<bool>());
    CHECK(row[2].as<bool>());
    CHECK(row[3].as<bool>());
  }
  f.sql("DROP TABLE " + times);
}

TEST_CASE("postgres: opened to read positions, it creates and changes nothing, and a missing table holds none") {
  Fixture f;
  testing::TestContext reader;
  reader.reading_positions = true;
  auto reading = [&](const std::string& table) {
    auto s = testing::make<PostgresSink>({{"url", f.url}, {"table", table}, {"positions_table", f.positions},
                                          {"columns", StringMap{{"book", "book_id"}}}},
                                         reader);
    s->start();
    return s;
  };
  const auto exists = [&](const std::string& name) {
    return f.sql("SELECT to_regclass('" + name + "') IS NOT NULL")[0][0].as<bool>();
  };
  CHECK_FALSE(reading(f.table)->stored_position("trades", 0).has_value());
  CHECK_FALSE(exists(f.positions));  // not created
  Batch b;
  b.records.push_back(trade("T1", 1, "B", 0, 4));
  write(*f.sink(), b);
  CHECK(reading(f.table)->stored_position("trades", 0) == 5);
  CHECK_FALSE(reading(f.table + "_none")->stored_position("trades", 0).has_value());  // no such table
  // A positions table of the earlier layout is read without being migrated.
  f.sql("DROP TABLE " + f.positions);
  f.sql("CREATE TABLE " + f.positions + " (pipeline text, topic text, partition integer, "
        "next_offset bigint NOT NULL, PRIMARY KEY (pipeline, topic, partition))");
  f.sql("INSERT INTO " + f.positions + " VALUES ('test', 'trades', 0, 7)");
  CHECK(reading(f.table)->stored_position("trades", 0) == 7);
  CHECK(f.sql("SELECT count(*) FROM pg_attribute WHERE attrelid = '" + f.positions +
              "'::regclass AND attname = 'destination'")[0][0].as<int>() == 0);
}
