// The sqlite sink and query route on copies of seed 003's table, checked with SQL of
// the test's own through a separate connection.
#include <doctest/doctest.h>

#include <sqlite3.h>

#include <cmath>
#include <filesystem>
#include <thread>
#include <tuple>

#include <pipehost/testing.hpp>

#include "sqlite_query.hpp"
#include "sqlite_sink.hpp"

using namespace pipehost;
using namespace pipehost::sqlite;
namespace fs = std::filesystem;

namespace {

const char* kDdl =
    "CREATE TABLE IF NOT EXISTS \"aggregated\" (\n\t\"food\"\tTEXT,\n\t\"count\"\tINTEGER,\n\tPRIMARY KEY(\"food\")\n)";

struct Fixture {
  std::string path = (fs::temp_directory_path() / ("pipehost-sqlite-" + std::to_string(::getpid()) + "-" +
                                                   std::to_string(counter++) + ".sqlite")).string();
  testing::TestContext context;
  static inline int counter = 0;

  Fixture() {
    fs::remove(path);
    sql(kDdl);
  }
  ~Fixture() {
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path + suffix);
  }
  std::string sql(const std::string& text) {
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_busy_timeout(db, 5000);
    std::string out;
    sqlite3_exec(db, text.c_str(), [](void* o, int n, char** values, char**) {
      auto& s = *static_cast<std::string*>(o);
      for (int i = 0; i < n; ++i) s += std::string(i ? "|" : "") + (values[i] ? values[i] : "NULL");
      s += "\n";
      return 0;
    }, &out, nullptr);
    sqlite3_close(db);
    return out;
  }
  std::unique_ptr<SqliteSink> sink() {
    auto s = testing::make<SqliteSink>({{"database", path}, {"table", std::string("aggregated")},
                                        {"add", std::vector<std::string>{"count"}}},
                                       context);
    s->start();
    return s;
  }
};

Batch counts(std::vector<std::pair<std::string, std::int64_t>> rows, std::int32_t partition,
             std::int64_t from, std::int64_t next) {
  static const auto schema = StructSchema::make({"food", "count"});
  Batch b;
  for (auto& [food, n] : rows) b.records.emplace_back().value = Struct{schema, {Value(food), Value(n)}};
  b.spans = {{"message", partition, from, next}};
  return b;
}

}  // namespace

TEST_CASE("sqlite: counts are added to existing rows and new foods start at their count") {
  Fixture f;
  f.sql("INSERT INTO aggregated VALUES ('X', 41)");
  const std::string ddl = f.sql("SELECT sql FROM sqlite_master WHERE name = 'aggregated'");
  auto sink = f.sink();
  Batch b = counts({{"X", 1}, {"mayo", 3}, {"butter", 1}}, 0, 0, 5);
  CHECK(testing::write_batch(*sink, b).status.is_ok());
  CHECK(f.sql("SELECT food, count FROM aggregated ORDER BY food") == "X|42\nbutter|1\nmayo|3\n");
  CHECK(sink->stored_position("message", 0) == 5);
  // The structure of the user's table is unchanged, byte for byte.
  CHECK(f.sql("SELECT sql FROM sqlite_master WHERE name = 'aggregated'") == ddl);
  CHECK(ddl.find("\"count\"\tINTEGER") != std::string::npos);
}

// count_by's `as` not named like the `add` column: the count's field is missing, and
// coalesce(count, 0) + NULL wiped every total it met. A record without its key would be
// a new row each time (SQLite allows NULL in a primary key column).
TEST_CASE("sqlite: a record without a number to add or without its key is rejected, the table untouched") {
  Fixture f;
  f.sql("INSERT INTO aggregated VALUES ('pie', 36)");
  auto sink = f.sink();
  static const auto renamed = StructSchema::make({"food", "cnt"});
  static const auto keyless = StructSchema::make({"count"});
  Batch b;
  b.records.emplace_back().value = Struct{renamed, {Value(std::string("pie")), Value(std::int64_t{2})}};
  b.records.emplace_back().value = Struct{keyless, {Value(std::int64_t{5})}};
  b.records.emplace_back().value = Struct{StructSchema::make({"food", "count"}),
                                          {Value(std::string("pie")), Value(std::string("two"))}};
  b.records.emplace_back().value = Struct{StructSchema::make({"food", "count"}),
                                          {Value(std::string("lard")), Value(std::int64_t{1})}};
  b.spans = {{"message", 0, 0, 4}};
  auto result = testing::write_batch(*sink, b);
  CHECK(result.status.is_ok());
  REQUIRE(result.rejections.size() == 3);
  CHECK(result.rejections[0].reason ==
        "sqlite: add = [\"count\"] needs a number in field 'count', and the record has no such field "
        "(with count_by, its `as` names the field)");
  CHECK(result.rejections[1].reason == "sqlite: no value for the key column food of aggregated (field 'food')");
  CHECK(result.rejections[2].reason.find("and the record has no number there") != std::string::npos);
  CHECK(f.sql("SELECT food, quote(count) FROM aggregated ORDER BY food") == "lard|1\npie|36\n");

  // A number as text, or a boolean, is added as SQLite adds it; an INTEGER PRIMARY KEY
  // (the rowid) takes NULL for a new row.
  Batch c;
  c.records.emplace_back().value = Struct{StructSchema::make({"food", "count"}), {Value("pie"), Value("4")}};
  c.records.emplace_back().value = Struct{StructSchema::make({"food", "count"}), {Value("pie"), Value(true)}};
  c.spans = {{"message", 0, 4, 6}};
  CHECK(testing::write_batch(*sink, c).rejections.empty());
  CHECK(f.sql("SELECT count FROM aggregated WHERE food = 'pie'") == "41\n");

  // A NaN double is stored by SQLite as NULL (the total would be wiped); inf would stay.
  Batch e;
  const auto food_count = StructSchema::make({"food", "count"});
  e.records.emplace_back().value = Struct{food_count, {Value("pie"), Value(std::nan(""))}};
  e.records.emplace_back().value = Struct{food_count, {Value("pie"), Value(HUGE_VAL)}};
  e.records.emplace_back().value = Struct{food_count, {Value("pie"), Value(2.0)}};
  e.spans = {{"message", 0, 6, 9}};
  auto with_nan = testing::write_batch(*sink, e);
  REQUIRE(with_nan.rejections.size() == 2);
  CHECK(with_nan.rejections[0].reason.find("holds NaN") != std::string::npos);
  CHECK(with_nan.rejections[1].reason.find("no number there") != std::string::npos);
  CHECK(f.sql("SELECT count FROM aggregated WHERE food = 'pie'") == "43\n");  // INTEGER affinity
  f.sql("CREATE TABLE log (id INTEGER PRIMARY KEY, food TEXT, count INTEGER)");
  auto appender = testing::make<SqliteSink>({{"database", f.path}, {"table", std::string("log")}}, f.context);
  appender->start();
  Batch d;
  d.records.emplace_back().value = Struct{StructSchema::make({"food", "count"}), {Value("pie"), Value(std::int64_t{1})}};
  d.records.emplace_back().value = Struct{StructSchema::make({"food", "count"}), {Value("pie"), Value(std::int64_t{2})}};
  d.spans = {{"message", 0, 0, 2}};
  CHECK(testing::write_batch(*appender, d).rejections.empty());
  CHECK(f.sql("SELECT id, count FROM log ORDER BY id") == "1|1\n2|2\n");
}

TEST_CASE("sqlite: a batch already applied is skipped; one not continuing is refused") {
  Fixture f;
  auto sink = f.sink();
  Batch first = counts({{"mayo", 2}}, 0, 0, 10);
  testing::write_batch(*sink, first);
  Batch again = counts({{"mayo", 2}}, 0, 0, 10);  // redelivered
  CHECK(testing::write_batch(*sink, again).status.is_ok());
  CHECK(f.context.counter_value("batches_already_applied") == 1);
  Batch gap = counts({{"mayo", 1}}, 0, 12, 13);  // the file lost writes 10..11
  CHECK_THROWS_AS(testing::write_batch(*sink, gap), PositionMismatch);
  Batch overlap = counts({{"mayo", 1}}, 0, 5, 15);  // cannot be split after count_by
  CHECK_THROWS_AS(testing::write_batch(*sink, overlap), PositionMismatch);
  CHECK(f.sql("SELECT count FROM aggregated") == "2\n");
  Batch next = counts({{"mayo", 1}}, 0, 10, 11);
  testing::write_batch(*sink, next);
  CHECK(f.sql("SELECT count FROM aggregated") == "3\n");
}

TEST_CASE("sqlite: positions are per table: a pipeline pointed at another table of the file counts it from the start") {
  Fixture f;
  f.sql("CREATE TABLE other (food TEXT PRIMARY KEY, count INTEGER)");
  Batch first = counts({{"mayo", 2}}, 0, 0, 10);
  testing::write_batch(*f.sink(), first);
  auto to_other = testing::make<SqliteSink>({{"database", f.path}, {"table", std::string("other")},
                                             {"add", std::vector<std::string>{"count"}}},
                                            f.context);
  to_other->start();
  CHECK(to_other->stored_position("message", 0) == std::nullopt);
  Batch again = counts({{"mayo", 2}}, 0, -1, 10);
  CHECK(testing::write_batch(*to_other, again).status.is_ok());
  CHECK(f.sql("SELECT food, count FROM other") == "mayo|2\n");
  CHECK(f.sink()->stored_position("message", 0) == 10);
}

TEST_CASE("sqlite: a positions table of the earlier layout gets the table in its key; its rows are kept") {
  Fixture f;
  f.sql("CREATE TABLE pipehost_offsets (pipeline TEXT, topic TEXT, partition INTEGER, "
        "next_offset INTEGER NOT NULL, PRIMARY KEY (pipeline, topic, partition))");
  f.sql("INSERT INTO pipehost_offsets VALUES ('" + std::string(f.context.pipeline()) +
        "', 'message', 0, 7), ('another', 'message', 0, 3)");
  auto sink = f.sink();
  CHECK(sink->stored_position("message", 0) == 7);  // claimed by the table this pipeline writes
  Batch next = counts({{"mayo", 1}}, 0, 7, 8);
  CHECK(testing::write_batch(*sink, next).status.is_ok());
  CHECK(f.sql("SELECT pipeline, destination, next_offset FROM pipehost_offsets ORDER BY pipeline") ==
        "another||3\n" + std::string(f.context.pipeline()) + "|aggregated|8\n");
}

TEST_CASE("sqlite: a batch with one partition applied and another not is read again, not written") {
  Fixture f;
  auto sink = f.sink();
  Batch first = counts({{"mayo", 2}}, 0, 0, 10);
  testing::write_batch(*sink, first);
  // Partition 0 again (applied), partition 1 new: count_by folded both into one row.
  Batch mixed = counts({{"mayo", 3}}, 0, 0, 10);
  mixed.spans.push_back({"message", 1, -1, 1});
  CHECK_THROWS_AS(testing::write_batch(*sink, mixed), PositionMismatch);
  CHECK(f.sql("SELECT count FROM aggregated") == "2\n");
  CHECK_FALSE(sink->stored_position("message", 1).has_value());
}

TEST_CASE("sqlite: a span after records the broker deleted unread is written; one of unknown start is not") {
  Fixture f;
  auto sink = f.sink();
  Batch first = counts({{"mayo", 2}}, 0, 0, 10);
  testing::write_batch(*sink, first);
  Batch unknown_start = counts({{"mayo", 1}}, 0, -1, 40);  // a start the source cannot vouch for
  CHECK_THROWS_AS(testing::write_batch(*sink, unknown_start), PositionMismatch);
  Batch after_gap = counts({{"mayo", 1}}, 0, Span::kAfterLostRecords, 40);  // 10..38 deleted unread
  CHECK(testing::write_batch(*sink, after_gap).status.is_ok());
  CHECK(f.sql("SELECT count FROM aggregated") == "3\n");
  CHECK(sink->stored_position("message", 0) == 40);
}

TEST_CASE("sqlite: a forgotten position lets a new log of the partition start from its beginning") {
  Fixture f;
  auto sink = f.sink();
  Batch first = counts({{"mayo", 2}}, 0, 0, 10);
  testing::write_batch(*sink, first);
  sink->forget_position("message", 0);
  CHECK_FALSE(sink->stored_position("message", 0).has_value());
  Batch fresh = counts({{"mayo", 5}}, 0, -1, 5);  // the new log's first records
  CHECK(testing::write_batch(*sink, fresh).status.is_ok());
  CHECK(f.sql("SELECT count FROM aggregated") == "7\n");
  CHECK(sink->stored_position("message", 0) == 5);
}

TEST_CASE("sqlite: rows the table refuses are rejected when the batch is read again") {
  // CHECK constraints only SQLite knows: the batch is refused with nothing written, and
  // the rows are rejected when the source reads it again (by origin, or for counts made
  // by count_by, which have none, by primary key).
  Fixture f;
  f.sql("DROP TABLE aggregated");
  f.sql("CREATE TABLE aggregated (food TEXT PRIMARY KEY CHECK (length(food) <= 10), "
        "count INTEGER CHECK (count >= 0))");
  auto sink = f.sink();
  static const auto schema = StructSchema::make({"food", "count"});
  auto read = [&] {
    Batch b;
    const std::vector<std::pair<std::string, std::int64_t>> rows = {
        {"mayo", 2}, {"a very long food name", 1}, {"butter", -3}, {"ham", 4}};
    for (std::size_t i = 0; i < rows.size(); ++i) {
      Record& r = b.records.emplace_back();
      r.value = Struct{schema, {Value(rows[i].first), Value(rows[i].second)}};
      r.origin = {"message", 0, static_cast<std::int64_t>(i)};
    }
    b.spans = {{"message", 0, 0, 4}};
    return b;
  };
  Batch first = read();
  CHECK_THROWS_AS(testing::write_batch(*sink, first), PositionMismatch);
  CHECK(f.sql("SELECT count(*) FROM aggregated") == "0\n");
  CHECK_FALSE(sink->stored_position("message", 0));
  Batch again = read();
  auto result = testing::write_batch(*sink, again);
  CHECK(result.status.is_ok());
  REQUIRE(result.rejections.size() == 2);
  CHECK(result.rejections[0].record.origin.offset == 1);
  CHECK(result.rejections[1].record.origin.offset == 2);
  CHECK(result.rejections[0].reason.find("sqlite: table aggregated refused the row: CHECK constraint failed") == 0);
  CHECK(f.sql("SELECT food, count FROM aggregated ORDER BY food") == "ham|4\nmayo|2\n");
  CHECK(sink->stored_position("message", 0) == 4);

  Batch folded = counts({{"eggs", 1}, {"another very long one", 5}}, 0, 4, 9);  // no origins
  CHECK_THROWS_AS(testing::write_batch(*sink, folded), PositionMismatch);
  Batch folded_again = counts({{"eggs", 1}, {"another very long one", 5}}, 0, 4, 9);
  result = testing::write_batch(*sink, folded_again);
  REQUIRE(result.rejections.size() == 1);
  CHECK(result.rejections[0].reason.find("CHECK constraint failed") != std::string::npos);
  CHECK(f.sql("SELECT food, count FROM aggregated ORDER BY food") == "eggs|1\nham|4\nmayo|2\n");
  CHECK(sink->stored_position("message", 0) == 9);
}

TEST_CASE("sqlite: a constraint that rolls the transaction back writes nothing on its own") {
  Fixture f;
  f.sql("DROP TABLE aggregated");
  f.sql("CREATE TABLE aggregated (food TEXT PRIMARY KEY, count INTEGER, note TEXT NOT NULL ON CONFLICT ROLLBACK)");
  auto sink = f.sink();
  auto read = [] {
    static const auto schema = StructSchema::make({"food", "count", "note"});
    Batch b;
    for (const char* food : {"mayo", "ham", "eggs"})
      b.records.emplace_back().value = Struct{schema, {Value(std::string(food)), Value(std::int64_t{1}),
                                                       Value(std::string("n"))}};
    b.records[2].value.as<Struct>()->fields[1] = Value(std::int64_t{2});
    b.records[1].value.as<Struct>()->fields[2] = Value();  // note null: NOT NULL refuses it
    b.spans = {{"message", 0, 0, 3}};
    for (std::int64_t i = 0; i < 3; ++i) b.records[static_cast<std::size_t>(i)].origin = {"message", 0, i};
    return b;
  };
  Batch first = read();
  CHECK_THROWS_AS(testing::write_batch(*sink, first), PositionMismatch);
  CHECK(f.sql("SELECT count(*) FROM aggregated") == "0\n");  // eggs was not written alone
  Batch again = read();
  auto result = testing::write_batch(*sink, again);
  REQUIRE(result.rejections.size() == 1);
  CHECK(result.rejections[0].reason.find("NOT NULL constraint failed") != std::string::npos);
  CHECK(f.sql("SELECT food, count FROM aggregated ORDER BY food") == "eggs|2\nmayo|1\n");
  CHECK(sink->stored_position("message", 0) == 3);
}

TEST_CASE("sqlite: with foreign_keys, rows breaking one are rejected, deferred ones at commit too") {
  // SQLite enforces foreign keys only when asked (foreign_keys = true). An immediate one
  // fails its row; a deferred one fails the COMMIT, and the sink finds which rows broke
  // it. A row whose parent comes later in the batch (what deferring is for) is kept.
  for (const std::string when : {"", " DEFERRABLE INITIALLY DEFERRED"}) {
    CAPTURE(when);
    Fixture f;
    f.sql("DROP TABLE aggregated");
    f.sql("CREATE TABLE foods (name TEXT PRIMARY KEY); INSERT INTO foods VALUES ('mayo'), ('eggs')");
    f.sql("CREATE TABLE aggregated (food TEXT PRIMARY KEY REFERENCES foods (name)" + when +
          ", count INTEGER, parent TEXT REFERENCES aggregated (food)" + when + ")");
    auto sink = testing::make<SqliteSink>({{"database", f.path}, {"table", std::string("aggregated")},
                                           {"add", std::vector<std::string>{"count"}},
                                           {"foreign_keys", true}},
                                          f.context);
    sink->start();
    static const auto schema = StructSchema::make({"food", "count", "parent"});
    auto read = [&] {
      Batch b;
      const std::vector<std::tuple<std::string, std::int64_t, Value>> rows = {
          {"mayo", 1, Value("eggs")}, {"spam", 2, Value()}, {"eggs", 3, Value()}};
      for (std::size_t i = 0; i < rows.size(); ++i) {
        Record& r = b.records.emplace_back();
        r.value = Struct{schema, {Value(std::get<0>(rows[i])), Value(std::get<1>(rows[i])), std::get<2>(rows[i])}};
        r.origin = {"message", 0, static_cast<std::int64_t>(i)};
      }
      b.spans = {{"message", 0, 0, 3}};
      return b;
    };
    if (when.empty()) {
      // mayo's parent, eggs, comes after it: an immediate key refuses mayo too.
      Batch first = read();
      CHECK_THROWS_AS(testing::write_batch(*sink, first), PositionMismatch);
      Batch again = read();
      auto result = testing::write_batch(*sink, again);
      REQUIRE(result.rejections.size() == 2);
      CHECK(f.sql("SELECT food, count FROM aggregated") == "eggs|3\n");
      continue;
    }
    Batch first = read();
    CHECK_THROWS_WITH_AS(testing::write_batch(*sink, first), doctest::Contains("at commit"), PositionMismatch);
    CHECK(f.sql("SELECT count(*) FROM aggregated") == "0\n");
    Batch again = read();
    auto result = testing::write_batch(*sink, again);
    REQUIRE(result.rejections.size() == 1);
    CHECK(result.rejections[0].record.origin.offset == 1);
    CHECK(result.rejections[0].reason.find("FOREIGN KEY constraint failed") != std::string::npos);
    CHECK(f.sql("SELECT food, count, parent FROM aggregated ORDER BY food") == "eggs|3|NULL\nmayo|1|eggs\n");
    CHECK(sink->stored_position("message", 0) == 3);
  }
}

TEST_CASE("sqlite: a deferred chain of children before their parents is kept whole; its orphan is refused") {
  // Row i's parent is row i + 1, the last one's is in the table: every row is kept. One
  // more row names a parent nowhere: only it is refused. (Passes of one direction kept one
  // row of such a chain each: 300 passes here.)
  Fixture f;
  f.sql("CREATE TABLE nodes (name TEXT PRIMARY KEY, parent TEXT REFERENCES nodes (name) DEFERRABLE INITIALLY DEFERRED);"
        "INSERT INTO nodes VALUES ('root', NULL)");
  auto sink = testing::make<SqliteSink>({{"database", f.path}, {"table", std::string("nodes")}, {"foreign_keys", true}},
                                        f.context);
  sink->start();
  static const auto schema = StructSchema::make({"name", "parent"});
  const int chain = 300;
  auto read = [&] {
    Batch b;
    for (int i = 0; i <= chain; ++i) {
      Record& r = b.records.emplace_back();
      const std::string name = i == chain ? "orphan" : "n" + std::to_string(i);
      const std::string parent = i == chain ? "nobody" : i + 1 == chain ? "root" : "n" + std::to_string(i + 1);
      r.value = Struct{schema, {Value(name), Value(parent)}};
      r.origin = {"nodes", 0, i};
    }
    b.spans = {{"nodes", 0, 0, chain + 1}};
    return b;
  };
  Batch first = read();
  CHECK_THROWS_WITH_AS(testing::write_batch(*sink, first), doctest::Contains("refused 1 row(s) at commit"),
                       PositionMismatch);
  Batch again = read();
  auto result = testing::write_batch(*sink, again);
  REQUIRE(result.rejections.size() == 1);
  CHECK(result.rejections[0].record.origin.offset == chain);
  CHECK(f.sql("SELECT count(*) FROM nodes") == std::to_string(chain + 1) + "\n");
  CHECK(f.sql("SELECT count(*) FROM nodes WHERE name = 'orphan'") == "0\n");
}

TEST_CASE("sqlite: records of more shapes than the statements kept are all written right") {
  // Each set of fields a record leaves out is its own upsert; past 64 the least recently
  // used is dropped. 128 shapes, twice over, interleaved with the one shape used most.
  Fixture f;
  f.sql("CREATE TABLE wide (id INTEGER PRIMARY KEY, a INTEGER, b INTEGER, c INTEGER, d INTEGER, e INTEGER, "
        "g INTEGER, h INTEGER)");
  auto sink = testing::make<SqliteSink>({{"database", f.path}, {"table", std::string("wide")}}, f.context);
  sink->start();
  const std::vector<std::string> columns = {"a", "b", "c", "d", "e", "g", "h"};
  Batch b;
  std::int64_t expected = 0;
  for (int round = 0; round < 2; ++round)
    for (int shape = 0; shape < 128; ++shape) {
      for (int common = 0; common < 2; ++common) {
        const int bits = common ? 127 : shape;
        std::vector<std::string> names = {"id"};
        std::vector<Value> values = {Value(std::int64_t{common ? 1000 : shape})};
        for (std::size_t c = 0; c < columns.size(); ++c)
          if (bits & (1 << c)) {
            names.push_back(columns[c]);
            values.emplace_back(std::int64_t{round * 10 + static_cast<int>(c)});
          }
        b.records.emplace_back().value = Struct{StructSchema::make(names), std::move(values)};
      }
    }
  for (std::size_t c = 0; c < columns.size(); ++c) expected += 10 + static_cast<std::int64_t>(c);
  b.spans = {{"wide", 0, 0, static_cast<std::int64_t>(b.records.size())}};
  CHECK(testing::write_batch(*sink, b).rejections.empty());
  // Row 127 had every column in both rounds; row 0 none (all NULL); row 5 columns a and c.
  CHECK(f.sql("SELECT a + b + c + d + e + g + h FROM wide WHERE id = 127") == std::to_string(expected) + "\n");
  CHECK(f.sql("SELECT a + b + c + d + e + g + h FROM wide WHERE id = 1000") == std::to_string(expected) + "\n");
  CHECK(f.sql("SELECT quote(a), quote(b) FROM wide WHERE id = 0") == "NULL|NULL\n");
  CHECK(f.sql("SELECT a, quote(b), c FROM wide WHERE id = 5") == "10|NULL|12\n");
  CHECK(f.sql("SELECT count(*) FROM wide") == "129\n");
}

TEST_CASE("sqlite: without foreign_keys, SQLite's default, a foreign key is not enforced") {
  Fixture f;
  f.sql("DROP TABLE aggregated");
  f.sql("CREATE TABLE foods (name TEXT PRIMARY KEY)");
  f.sql("CREATE TABLE aggregated (food TEXT PRIMARY KEY REFERENCES foods (name), count INTEGER)");
  auto sink = f.sink();
  Batch b = counts({{"spam", 2}}, 0, 0, 1);
  CHECK(testing::write_batch(*sink, b).rejections.empty());
  CHECK(f.sql("SELECT food, count FROM aggregated") == "spam|2\n");
}

TEST_CASE("sqlite: two writers on one file lose no increment") {
  Fixture f;
  auto a = f.sink();
  testing::TestContext other;
  other.pipeline_name = "test";
  auto b = testing::make<SqliteSink>({{"database", f.path}, {"table", std::string("aggregated")},
                                      {"add", std::vector<std::string>{"count"}}},
                                     other);
  b->start();
  auto work = [](SqliteSink& sink, std::int32_t partition) {
    for (int i = 0; i < 200; ++i) {
      Batch batch = counts({{"mayo", 1}, {"butter", 2}}, partition, i, i + 1);
      testing::write_batch(sink, batch);
    }
  };
  std::thread ta([&] { work(*a, 0); });
  std::thread tb([&] { work(*b, 1); });
  ta.join();
  tb.join();
  CHECK(f.sql("SELECT food, count FROM aggregated ORDER BY food") == "butter|800\nmayo|400\n");
}

TEST_CASE("sqlite: asking a stored position leaves no read open to block this writer later") {
  // A statement left on its row kept an old snapshot: after another writer committed,
  // this connection's every BEGIN IMMEDIATE failed as "database is locked", forever.
  Fixture f;
  auto a = f.sink();
  testing::TestContext other;
  auto b = testing::make<SqliteSink>({{"database", f.path}, {"table", std::string("aggregated")},
                                      {"add", std::vector<std::string>{"count"}}},
                                     other);
  b->start();
  Batch first = counts({{"mayo", 1}}, 0, 0, 1);
  CHECK(testing::write_batch(*a, first).status.is_ok());
  CHECK(a->stored_position("message", 0) == 1);  // a row: the statement stops on it
  Batch by_b = counts({{"mayo", 1}}, 1, 0, 1);
  CHECK(testing::write_batch(*b, by_b).status.is_ok());
  Batch second = counts({{"mayo", 1}}, 0, 1, 2);
  CHECK_NOTHROW(testing::write_batch(*a, second));
  CHECK(f.sql("SELECT count FROM aggregated") == "3\n");
}

TEST_CASE("sqlite: a missing file is created from its template, writable") {
  Fixture f;
  const std::string copy = f.path + ".copy";
  fs::permissions(f.path, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  auto sink = testing::make<SqliteSink>({{"database", copy}, {"template", f.path},
                                         {"table", std::string("aggregated")},
                                         {"add", std::vector<std::string>{"count"}}},
                                        f.context);
  sink->start();
  Batch b = counts({{"mayo", 1}}, 0, 0, 1);
  CHECK(testing::write_batch(*sink, b).status.is_ok());
  sink->stop();
  fs::permissions(f.path, fs::perms::owner_write, fs::perm_options::add);
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(copy + suffix);
}

TEST_CASE("sqlite: opening a new file waits while another process writes to it") {
  // Two processes starting on a fresh template copy (the food system's kill -9 test):
  // while one writes in the copy's rollback-journal mode (or switches it to WAL), the
  // other's switch to WAL is answered "database is locked" at once, without SQLite's busy
  // handler.
  Fixture f;  // a rollback-journal file, as a template copy starts
  sqlite3* writer = nullptr;
  REQUIRE(sqlite3_open(f.path.c_str(), &writer) == SQLITE_OK);
  const char* write = "BEGIN IMMEDIATE; INSERT OR REPLACE INTO aggregated VALUES ('mayo', 1);";
  REQUIRE(sqlite3_exec(writer, write, nullptr, nullptr, nullptr) == SQLITE_OK);
  std::thread finish([writer] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    sqlite3_exec(writer, "COMMIT", nullptr, nullptr, nullptr);
  });
  CHECK_NOTHROW(Database(f.path, std::nullopt, 5000, false));
  finish.join();
  CHECK(f.sql("PRAGMA journal_mode") == "wal\n");
  CHECK(f.sql("SELECT food, count FROM aggregated") == "mayo|1\n");

  // Past busy_timeout_ms it gives up, naming the file and the setting to raise.
  CHECK(f.sql("PRAGMA journal_mode = DELETE") == "delete\n");
  REQUIRE(sqlite3_exec(writer, write, nullptr, nullptr, nullptr) == SQLITE_OK);
  CHECK_THROWS_WITH_AS(Database(f.path, std::nullopt, 200, false),
                       doctest::Contains("busy_timeout_ms"), std::runtime_error);
  sqlite3_exec(writer, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(writer);
}

// The host retries a start that fails with a RetriableError; a FatalError stops the
// pipeline for good, which another writer's long transaction is no reason for.
TEST_CASE("sqlite: a file held by another writer past busy_timeout_ms fails the start retriably") {
  Fixture f;
  f.sql("PRAGMA journal_mode = WAL");
  sqlite3* writer = nullptr;
  REQUIRE(sqlite3_open(f.path.c_str(), &writer) == SQLITE_OK);
  REQUIRE(sqlite3_exec(writer, "BEGIN IMMEDIATE; INSERT INTO aggregated VALUES ('mayo', 1);", nullptr, nullptr,
                       nullptr) == SQLITE_OK);
  auto sink = testing::make<SqliteSink>({{"database", f.path}, {"table", std::string("aggregated")},
                                         {"add", std::vector<std::string>{"count"}},
                                         {"busy_timeout_ms", std::int64_t{100}}},
                                        f.context);
  CHECK_THROWS_WITH_AS(sink->start(), doctest::Contains("another writer holds the file"), RetriableError);
  sqlite3_exec(writer, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(writer);
  CHECK_NOTHROW(sink->start());
}

TEST_CASE("sqlite_query: the rows as the seed's API answered them, keys sorted") {
  Fixture f;
  testing::StageHarness<SqliteQuery> empty(
      {{"database", f.path}, {"query", std::string("SELECT * FROM aggregated ORDER BY food")}});
  empty->start();
  CHECK(empty->handle({}).body == "[]");
  f.sql("INSERT INTO aggregated VALUES ('mayo', 3), ('butter', 1), ('q\"uote', NULL)");
  HttpResponse r = empty->handle({});
  CHECK(r.status == 200);
  CHECK(r.content_type == "application/json");
  CHECK(r.body == "[{\"count\":1,\"food\":\"butter\"},{\"count\":3,\"food\":\"mayo\"},"
                  "{\"count\":null,\"food\":\"q\\\"uote\"}]");
}

TEST_CASE("sqlite_query: an answer past max_response_mb is refused, naming the option; the route goes on") {
  Fixture f;
  f.sql("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000) "
        "INSERT INTO aggregated SELECT printf('food-%08d', i), i FROM n");  // ~1.3 MB of JSON
  testing::StageHarness<SqliteQuery> all(
      {{"database", f.path}, {"query", std::string("SELECT * FROM aggregated")}, {"max_response_mb", 1}});
  all->start();
  CHECK_THROWS_WITH_AS(all->handle({}), doctest::Contains("passed max_response_mb = 1 at row 27172;"), FatalError);
  f.sql("DELETE FROM aggregated WHERE count > 20000");
  HttpResponse r = all->handle({});  // the statement was reset: it answers again
  CHECK(r.body.size() > 500000);
  CHECK(r.body.substr(r.body.size() - 39) == "{\"count\":20000,\"food\":\"food-00020000\"}]");
}

// What `pipehost validate` says of a query (and of a sink's table), before anything runs:
// a query that writes, one SQLite would run only the first statement of, one naming a
// table the file does not have; and the sink's table, columns and add columns.
TEST_CASE("sqlite: the checks read the file: a query that cannot answer, a table or column it lacks") {
  Fixture f;
  auto query_problems = [&](const std::string& query) {
    return testing::StageHarness<SqliteQuery>::problems({{"database", f.path}, {"query", query}});
  };
  CHECK(query_problems("SELECT * FROM aggregated").empty());
  CHECK(query_problems("SELECT * FROM aggregated; -- the end\n ;").empty());
  CHECK(query_problems("DELETE FROM aggregated") ==
        std::vector<std::string>{"option 'query': the query writes to the database; a route may only read (SELECT ...)"});
  CHECK(query_problems("SELECT 1; DELETE FROM aggregated") ==
        std::vector<std::string>{"option 'query': the query holds more than one statement; SQLite runs only "
                                 "the first: give one"});
  CHECK(query_problems("SELECT * FROM aggregatd") ==
        std::vector<std::string>{"option 'query': the query does not run: no such table: aggregatd"});

  auto sink_problems = [&](std::map<std::string, OptionValue> options) {
    options["database"] = f.path;
    return testing::StageHarness<SqliteSink>::problems(std::move(options));
  };
  CHECK(sink_problems({{"table", std::string("aggregated")}, {"add", std::vector<std::string>{"count"}}}).empty());
  CHECK(sink_problems({{"table", std::string("aggregatd")}}) ==
        std::vector<std::string>{"option 'table': table aggregatd does not exist in " + f.path});
  CHECK(sink_problems({{"table", std::string("aggregated")}, {"add", std::vector<std::string>{"cnt"}},
                       {"columns", StringMap{{"name", "fod"}}}}) ==
        std::vector<std::string>{
            "option 'columns': option columns maps field 'name' to column 'fod', which table aggregated does not "
            "have; its columns: food, count",
            "option 'add': option add names column 'cnt', which table aggregated does not have; its columns: "
            "food, count"});
}

TEST_CASE("sqlite: a column the record has no field for takes its DEFAULT in a new row, and is kept by an update") {
  Fixture f;
  f.sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, note TEXT, tag TEXT DEFAULT 'none', "
        "seen TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, remark TEXT)");
  auto sink = testing::make<SqliteSink>({{"database", f.path}, {"table", std::string("notes")}}, f.context);
  sink->start();
  static const auto note_only = StructSchema::make({"note"});
  static const auto with_tag = StructSchema::make({"note", "tag"});
  static const auto id_note = StructSchema::make({"id", "note"});
  static const auto nothing = StructSchema::make({"other"});
  Batch b;
  b.records.emplace_back().value = Struct{note_only, {Value("a")}};
  b.records.emplace_back().value = Struct{with_tag, {Value("b"), Value()}};  // an explicit null stays null
  b.records.emplace_back().value = Struct{with_tag, {Value("c"), Value("red")}};
  b.records.emplace_back().value = Struct{nothing, {Value("x")}};
  b.records.emplace_back().value = Struct{note_only, {Value("d")}};
  b.spans = {{"n", 0, 0, 5}};
  auto result = testing::write_batch(*sink, b);
  CHECK(result.status.is_ok());
  REQUIRE(result.rejections.size() == 1);
  CHECK(result.rejections[0].reason.find("none of the fields of notes's columns") != std::string::npos);
  // New rowids in record order, the defaults where the record has no field.
  CHECK(f.sql("SELECT id, note, coalesce(tag, 'NULL'), seen <> '' FROM notes ORDER BY id") ==
        "1|a|none|1\n2|b|NULL|1\n3|c|red|1\n4|d|none|1\n");
  f.sql("UPDATE notes SET remark = 'kept', seen = 'then' WHERE id = 3");
  Batch u;
  u.records.emplace_back().value = Struct{id_note, {Value(std::int64_t{3}), Value("c2")}};
  u.spans = {{"n", 0, 5, 6}};
  CHECK(testing::write_batch(*sink, u).status.is_ok());
  CHECK(f.sql("SELECT note, tag, seen, remark FROM notes WHERE id = 3") == "c2|red|then|kept\n");
}

TEST_CASE("sqlite: opened to read positions, it creates and changes nothing, and a missing store holds none") {
  Fixture f;
  testing::TestContext reader;
  reader.reading_positions = true;
  auto reading = [&](const std::string& database, std::optional<std::string> from_template = std::nullopt) {
    std::map<std::string, OptionValue> options{{"database", database}, {"table", std::string("aggregated")},
                                               {"add", std::vector<std::string>{"count"}}};
    if (from_template) options["template"] = *from_template;
    auto s = testing::make<SqliteSink>(options, reader);
    s->start();
    return s;
  };
  // No file: none stored, and no file made from the template.
  const std::string missing = f.path + ".missing";
  CHECK_FALSE(reading(missing, f.path)->stored_position("message", 0).has_value());
  CHECK_FALSE(fs::exists(missing));
  // A file without a positions table: none stored, and no table made.
  CHECK_FALSE(reading(f.path)->stored_position("message", 0).has_value());
  CHECK(f.sql("SELECT count(*) FROM sqlite_master WHERE name = 'pipehost_offsets'") == "0\n");
  // The positions the pipeline stored, read as they are.
  Batch b = counts({{"mayo", 1}}, 0, 0, 6);
  CHECK(testing::write_batch(*f.sink(), b).status.is_ok());
  reader.pipeline_name = f.context.pipeline_name;
  CHECK(reading(f.path)->stored_position("message", 0) == 6);
  // A table of the earlier layout is read without being rebuilt.
  f.sql("DROP TABLE pipehost_offsets");
  f.sql("CREATE TABLE pipehost_offsets (pipeline TEXT, topic TEXT, partition INTEGER, "
        "next_offset INTEGER NOT NULL, PRIMARY KEY (pipeline, topic, partition))");
  f.sql("INSERT INTO pipehost_offsets VALUES ('test', 'message', 0, 7)");
  CHECK(reading(f.path)->stored_position("message", 0) == 7);
  CHECK(f.sql("SELECT count(*) FROM pragma_table_info('pipehost_offsets') WHERE name = 'destination'") == "0\n");
}
