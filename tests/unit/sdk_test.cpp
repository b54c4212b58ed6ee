// SDK pieces every plugin leans on: UTF-8 validation, RFC 3339 formatting and the recycling of records'
// storage between batches.
#include <doctest/doctest.h>

#include <pipehost/decimal.hpp>
#include <pipehost/kafka_topic_name.hpp>
#include <pipehost/record.hpp>
#include <pipehost/redact.hpp>
#include <pipehost/time.hpp>
#include <pipehost/refused.hpp>
#include <pipehost/stage.hpp>
#include <pipehost/utf8.hpp>

#include <cstdio>
#include <ctime>

using namespace pipehost;

namespace {

// Unicode's table of well-formed byte sequences (3-7), one code point at a time: slow,
// and independent of utf8::valid's word-at-a-time scan.
bool reference_valid(std::string_view s) {
  std::size_t i = 0;
  auto in = [&](std::size_t k, unsigned lo, unsigned hi) {
    if (i + k >= s.size()) return false;
    const auto b = static_cast<unsigned char>(s[i + k]);
    return b >= lo && b <= hi;
  };
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c <= 0x7f) i += 1;
    else if (c >= 0xc2 && c <= 0xdf && in(1, 0x80, 0xbf)) i += 2;
    else if (c == 0xe0 && in(1, 0xa0, 0xbf) && in(2, 0x80, 0xbf)) i += 3;
    else if (((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) && in(1, 0x80, 0xbf) && in(2, 0x80, 0xbf)) i += 3;
    else if (c == 0xed && in(1, 0x80, 0x9f) && in(2, 0x80, 0xbf)) i += 3;
    else if (c == 0xf0 && in(1, 0x90, 0xbf) && in(2, 0x80, 0xbf) && in(3, 0x80, 0xbf)) i += 4;
    else if (c >= 0xf1 && c <= 0xf3 && in(1, 0x80, 0xbf) && in(2, 0x80, 0xbf) && in(3, 0x80, 0xbf)) i += 4;
    else if (c == 0xf4 && in(1, 0x80, 0x8f) && in(2, 0x80, 0xbf) && in(3, 0x80, 0xbf)) i += 4;
    else return false;
  }
  return true;
}

}  // namespace

TEST_CASE("utf8: agrees with Unicode's table at every length and position") {
  // Sequences well- and ill-formed, at every offset of ASCII text of every length up to
  // past three words, so each lands before, across and inside the overlapping last word.
  const std::vector<std::string> pieces = {
      "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xed\x9f\xbf",  // é € 😀 U+D7FF
      "\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\xff", "\xf0\x9f\x98"};
  int checked = 0;
  for (std::size_t length = 0; length <= 27; ++length)
    for (std::size_t at = 0; at <= length; ++at)
      for (const auto& piece : pieces) {
        std::string s(length, 'a');
        s.insert(at, piece);
        INFO("length ", length, " at ", at);
        CHECK(utf8::valid(s) == reference_valid(s));
        ++checked;
      }
  for (std::size_t length = 0; length <= 27; ++length) CHECK(utf8::valid(std::string(length, 'z')));
  CHECK(checked > 4000);
  CHECK_FALSE(utf8::valid(std::string(30, 'a') + "\xc3"));  // truncated at the very end
}

TEST_CASE("RefusedRecords: rejects what was remembered until a written batch passes it") {
  RefusedRecords refused;
  auto record = [](std::int32_t partition, std::int64_t offset, std::string key) {
    Record r;
    r.origin = {"t", partition, offset};
    r.key = std::move(key);
    return r;
  };
  CHECK(refused.remember(record(0, 5, ""), "five"));
  CHECK(refused.remember(record(1, 9, ""), "nine"));
  CHECK_FALSE(refused.remember(record(-1, -1, "k"), "no position"));
  refused.remember_key("k", "by key");
  auto key_of = [](const Record& r) { return std::string(r.key.view()); };

  Batch b;  // read again: 0@4..6, a made record with key k, 1@9
  for (std::int64_t o = 4; o <= 6; ++o) b.records.push_back(record(0, o, ""));
  b.records.push_back(record(-1, -1, "k"));
  b.records.push_back(record(1, 9, ""));
  b.spans = {{"t", 0, 4, 7}, {"t", 1, 9, 10}};
  refused.reject_in(b, key_of);
  REQUIRE(b.rejections.size() == 3);
  CHECK(b.rejections[0].reason == "five");
  CHECK(b.rejections[1].reason == "by key");
  CHECK(b.rejections[2].reason == "nine");

  // A shorter read that stops before 0@5 is written: 0@5 stays remembered.
  Batch shorter;
  shorter.spans = {{"t", 0, 4, 5}};
  refused.written(shorter);
  Batch later;
  later.records.push_back(record(0, 5, ""));
  later.records.push_back(record(-1, -1, "k"));
  refused.reject_in(later, key_of);
  REQUIRE(later.rejections.size() == 1);  // keys are forgotten by any written batch
  CHECK(later.rejections[0].reason == "five");
  refused.written(b);
  CHECK(refused.empty());
}

TEST_CASE("utf8::prefix and abbreviated never split a character") {
  const std::string text = "ab\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";  // a b é € 😀 z
  for (std::size_t most = 0; most <= text.size() + 1; ++most) {
    const std::string_view p = utf8::prefix(text, most);
    INFO("most ", most);
    CHECK(p.size() <= most);
    CHECK(text.starts_with(p));
    CHECK(utf8::valid(p));
    // The longest such start: one more character would not fit.
    if (p.size() < text.size()) {
      std::size_t next = p.size() + 1;
      while (next < text.size() && (static_cast<unsigned char>(text[next]) & 0xC0) == 0x80) ++next;
      CHECK(next > most);
    }
  }
  CHECK(utf8::prefix(text, 4) == "ab\xc3\xa9");
  CHECK(utf8::prefix(text, 5) == "ab\xc3\xa9");  // € needs 3 bytes
  CHECK(utf8::abbreviated("short", 60) == "short");
  CHECK(utf8::abbreviated(text, 8) == "ab\xc3\xa9...");
  CHECK(utf8::abbreviated(std::string(100, 'x'), 60) == std::string(57, 'x') + "...");
}

namespace {

std::shared_ptr<const StructSchema> two_fields() { return StructSchema::make({"id", "n"}); }

Value decoded(const std::shared_ptr<const StructSchema>& schema, std::string id) {
  return Struct{schema, {Value(std::move(id)), Value(1)}};
}

}  // namespace

TEST_CASE("batch: recycled records come back empty, with their decoded storage for a decoder") {
  const auto schema = two_fields();
  const std::string long_id(100, 'x');  // on the heap, not in the string's own buffer
  Batch batch;
  batch.capacity = 4;
  Record& first = batch.add();
  first.payload = std::string("payload");
  first.key = std::string("key");
  first.headers.push_back({"h", "v"});
  first.destination_topic = "elsewhere";
  first.value = decoded(schema, long_id);
  const Value* storage = &first.value.as<Struct>()->fields[0];
  const char* text = first.value.as<Struct>()->fields[0].as<std::string>()->data();
  batch.recycle();
  CHECK(batch.records.empty());

  Record& r = batch.add();
  CHECK(r.value.is_null());  // nothing of the earlier record shows
  CHECK(r.payload.empty());
  CHECK(r.key.empty());
  CHECK(r.headers.empty());
  CHECK(r.destination_topic.empty());
  // A copy (a rejection, a fan-out) carries no storage.
  Record copy = r;
  CHECK(copy.value_to_overwrite().is_null());
  // The decoder gets the earlier struct's storage: same fields, same string buffer.
  Value& v = r.value_to_overwrite();
  REQUIRE(v.as<Struct>());
  CHECK(&v.as<Struct>()->fields[0] == storage);
  v.as<Struct>()->fields[0].assign_string("short");
  CHECK(v.as<Struct>()->fields[0].as<std::string>()->data() == text);
  // Once the record has a value, value_to_overwrite hands back that value.
  CHECK(&r.value_to_overwrite() == &r.value);
  // A record beyond the spares is new.
  CHECK(batch.add().value_to_overwrite().is_null());
}

TEST_CASE("batch: record i gets back the storage record i had, whatever each poll's size") {
  // So each batch walks its decoded storage in one order: polls of varying sizes used to
  // shuffle it, and cold shuffled storage decodes ~2x slower (bench/NOTES.md).
  const auto schema = two_fields();
  Batch batch;
  batch.capacity = 4;
  std::vector<const Value*> storage;
  for (int i = 0; i < 3; ++i) {
    Record& r = batch.add();
    r.value_to_overwrite() = decoded(schema, "r" + std::to_string(i));
    storage.push_back(r.value.as<Struct>()->fields.data());
  }
  for (std::size_t size : {2, 3, 1, 3}) {
    batch.recycle();
    for (std::size_t i = 0; i < size; ++i) {
      Value& v = batch.add().value_to_overwrite();
      REQUIRE(v.as<Struct>());
      CHECK(v.as<Struct>()->fields.data() == storage[i]);
    }
  }
}

TEST_CASE("batch: dropped records' storage is kept; big records and spares beyond capacity are not") {
  const auto schema = two_fields();
  Batch batch;
  batch.capacity = 2;
  for (int i = 0; i < 3; ++i) batch.add().value = decoded(schema, "r" + std::to_string(i));
  batch.drop(0);
  batch.compact();  // the dropped record's struct becomes a spare
  REQUIRE(batch.records.size() == 2);
  CHECK(batch.records[0].value == decoded(schema, "r1"));  // order and data kept
  batch.recycle();  // one more spare: capacity (2) reached, the third record's goes
  CHECK(batch.add().value_to_overwrite().as<Struct>());
  CHECK(batch.add().value_to_overwrite().as<Struct>());
  CHECK(batch.add().value_to_overwrite().is_null());
  batch.recycle();

  Record& big = batch.add();  // takes one of the two spares
  big.payload = std::string(64 * 1024, 'b');
  big.value = decoded(schema, "big");
  batch.recycle();  // its storage is freed, not kept: one spare left
  CHECK(batch.add().value_to_overwrite().as<Struct>());
  CHECK(batch.add().value_to_overwrite().is_null());
}

TEST_CASE("batch: recycling releases what the records borrowed, once, after the records") {
  int released = 0;
  {
    Batch batch;
    Record& r = batch.add();
    static const char bytes[] = "borrowed";
    r.payload.borrow(bytes);
    r.value = decoded(two_fields(), "v");
    batch.hold(&released, [](void* n) { ++*static_cast<int*>(n); });
    batch.recycle();
    CHECK(released == 1);
    CHECK(batch.records.empty());
    CHECK(batch.spans.empty());
    batch.add();
  }
  CHECK(released == 1);  // not again when the batch goes
}

TEST_CASE("sdk time: format_rfc3339 writes what gmtime_r and snprintf wrote, day by day") {
  auto reference = [](std::int64_t micros_since_epoch) {
    std::int64_t seconds = micros_since_epoch / 1000000, micros = micros_since_epoch % 1000000;
    if (micros < 0) micros += 1000000, seconds -= 1;
    std::time_t tt = static_cast<std::time_t>(seconds);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[48];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(micros));
    return std::string(buf);
  };
  // The last and first microsecond of every day from year -100 to 10100, and noon.
  int differ = 0;
  for (std::int64_t day = -756000; day < 2970000; ++day)
    for (std::int64_t at : {std::int64_t{0}, std::int64_t{43200123456}, std::int64_t{86399999999}}) {
      const std::int64_t micros = day * 86400000000 + at;
      if (pipehost::time::format_rfc3339(micros) != reference(micros) && ++differ < 5)
        CHECK(pipehost::time::format_rfc3339(micros) == reference(micros));
    }
  CHECK(differ == 0);
  CHECK(pipehost::time::format_rfc3339(951827696000001) == "2000-02-29T12:34:56.000001Z");
  CHECK(pipehost::time::format_rfc3339(-1) == "1969-12-31T23:59:59.999999Z");
}

TEST_CASE("Blob: a null blob reads as empty (never a null pointer), survives copies, and a write ends it") {
  pipehost::Blob b;
  CHECK_FALSE(b.is_null());
  b.borrow_null();
  CHECK(b.is_null());
  CHECK(b.empty());
  CHECK(b.data() != nullptr);
  pipehost::Blob copy = b;
  CHECK(copy.is_null());
  b.borrow(std::string_view("x", 0));  // an empty value that is there
  CHECK_FALSE(b.is_null());
  copy.edit() += "y";
  CHECK_FALSE(copy.is_null());
  CHECK(copy == "y");
}

TEST_CASE("sdk time: parse_rfc3339 takes what Go's encoding/json takes (the seed's consumer)") {
  using pipehost::time::parse_rfc3339;
  auto micros = [](std::string_view s) { return parse_rfc3339(s)->micros_since_epoch; };
  CHECK(micros("2000-02-29T12:34:56.000001Z") == 951827696000001);
  CHECK(micros("2000-02-29T14:34:56.000001+02:00") == 951827696000001);
  CHECK(micros("1970-01-01T00:00:00Z") == 0);
  CHECK(parse_rfc3339("2024-05-01T12:34:56.123456789Z")->dropped_nanos == 789);
  for (const char* refused :
       {"2024-05-01 12:34:56Z", "2024-05-01t12:34:56Z", "2024-05-01T12:34:56z",
        "2016-12-31T23:59:60Z", "2023-02-29T00:00:00Z", "2024-05-01T12:34:56", "2024-05-01T12:34:56.Z",
        "2024-05-01T24:00:00Z", "2024-05-01T12:34:56+24:00", "2024-05-01T12:34:56Z ", "2024-5-01T12:34:56Z"})
    CHECK_MESSAGE(!parse_rfc3339(refused), refused);
}

TEST_CASE("FieldReader: a shape dropped and another made at its address is read by name") {
  // json_decode drops its shapes past 4096 of them; the allocator then hands a new shape
  // of the same size the address of one just freed. A reader that remembered only the
  // address read the field at the old shape's index.
  FieldReader reader("b");
  int reused = 0;
  const void* last = nullptr;
  for (int i = 0; i < 50; ++i) {
    const bool b_first = i % 2 == 1;
    auto schema = StructSchema::make(b_first ? std::vector<std::string>{"b", "a"}
                                             : std::vector<std::string>{"a", "b"});
    if (schema.get() == last) ++reused;
    last = schema.get();
    Value v = Struct{schema, {Value(std::int64_t{b_first ? 2 : 1}), Value(std::int64_t{b_first ? 1 : 2})}};
    const Value* got = reader.read(v);
    REQUIRE(got);
    CHECK(*got->as<std::int64_t>() == 2);
  }
  MESSAGE("shapes made at the address of the one before: " << reused);
}

TEST_CASE("sdk: a retried RecordTransform goes on from the record that threw, rejecting nothing twice") {
  struct Flaky : RecordTransform {
    std::vector<int> applied = std::vector<int>(4, 0);
    bool failed_once = false;
    Verdict apply(Record& r) override {
      const auto i = static_cast<std::size_t>(r.origin.offset);
      applied[i] += 1;
      if (i == 0) throw InvalidRecord("bad");
      if (i == 2 && !failed_once) {
        failed_once = true;
        throw RetriableError("registry unreachable");
      }
      return Verdict::keep;
    }
  } t;
  Batch b;
  for (int i = 0; i < 4; ++i) b.records.emplace_back().origin = {"t", 0, i};
  CHECK_THROWS_AS(t.process(b), RetriableError);
  t.process(b);  // the host's retry, with the batch as the failed call left it
  CHECK(b.rejections.size() == 1);
  CHECK(t.applied == std::vector<int>{1, 1, 2, 1});
  Batch next;  // another batch starts from its first record
  for (int i = 0; i < 4; ++i) next.records.emplace_back().origin = {"t", 0, i};
  t.process(next);
  CHECK(t.applied == std::vector<int>{2, 2, 3, 2});
}

TEST_CASE("decimal: a double is rounded as its shortest text, half away from zero") {
  // x * 100 rounded by its binary error: 2.675 up, 1.015 and 0.285 down.
  const std::vector<std::pair<double, std::int64_t>> cases = {
      {1.015, 102}, {1.005, 101}, {0.285, 29}, {2.675, 268}, {0.125, 13}, {0.045, 5}, {19.99, 1999},
      {-2.675, -268}, {0.004, 0}, {1e-300, 0}, {123456789.125, 12345678913}, {5.0, 500}};
  for (const auto& [x, units] : cases) {
    CAPTURE(x);
    CHECK(decimal::round_units(x, 2) == units);
    std::string problem;
    CHECK(decimal::to_units(Value(x), 2, std::int64_t{1} << 53, problem) == units);
  }
  CHECK_FALSE(decimal::rounds(19.99, 2));
  CHECK_FALSE(decimal::rounds(0.1 + 0.2, 2));
  CHECK(decimal::round_units(0.1 + 0.2, 2) == 30);
  CHECK(decimal::rounds(0.005, 2));
  CHECK(decimal::round_units(7.5, 0) == 8);
}

TEST_CASE("is_kafka_topic_name: what Kafka's Topic.validate accepts") {
  CHECK(pipehost::is_kafka_topic_name("tenant-a.orders_v2"));
  CHECK(pipehost::is_kafka_topic_name(std::string(249, 'x')));
  CHECK_FALSE(pipehost::is_kafka_topic_name(std::string(250, 'x')));
  CHECK_FALSE(pipehost::is_kafka_topic_name(""));
  CHECK_FALSE(pipehost::is_kafka_topic_name("."));
  CHECK_FALSE(pipehost::is_kafka_topic_name(".."));
  CHECK(pipehost::is_kafka_topic_name("..."));
  for (const char* bad : {"a b", "a/b", "t\xc3\xa9", "a:b", "a\n"})
    CHECK_FALSE(pipehost::is_kafka_topic_name(bad));
}

TEST_CASE("redact::url hides password parameters: libpq's key=value form and a URL's query") {
  using pipehost::redact::url;
  CHECK(url("host=db user=app password=s3cret dbname=trades") == "host=db user=app password=*** dbname=trades");
  CHECK(url("host=db password = 's3 \\'cret' port=5432") == "host=db password = *** port=5432");
  CHECK(url("PASSWORD=p@ss host=db") == "PASSWORD=*** host=db");
  CHECK(url("host=db sslpassword=k1") == "host=db sslpassword=***");
  CHECK(url("postgresql://db/app?user=u&password=s3cret&sslmode=off") ==
        "postgresql://db/app?user=u&password=***&sslmode=off");
  CHECK(url("postgresql://u:pw@db/app") == "postgresql://u:***@db/app");
  CHECK(url("host=db user=password_owner") == "host=db user=password_owner");
  CHECK(url("host=db password=") == "host=db password=***");
}
