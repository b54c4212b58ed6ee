// avro_decode and avro_encode: the seed's schemas on hand-framed bytes, round trips,
// schema resolution, subjects, and a catalogue of malformed values that must be rejected
// with a reason — never a crash, a hang or a giant allocation.
#include <doctest/doctest.h>

#include <limits>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include <pipehost/json.hpp>
#include <pipehost/testing.hpp>

#include "avro_decode.hpp"
#include "avro_encode.hpp"
#include "confluent_frame.hpp"

using namespace pipehost;
using pipehost::testing::StageHarness;
using pipehost::testing::TestContext;

namespace {

const std::string kSchemas = PIPEHOST_SCHEMAS_DIR;
const std::string kProducerSchema = kSchemas + "/producer-to-processor.avsc";
const std::string kConsumerSchema = kSchemas + "/processor-to-consumer.avsc";

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Avro's zig-zag varint, written by hand so the tests do not trust the code under test.
void put_long(std::string& out, std::int64_t v) {
  auto u = (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
  while (u >= 0x80) {
    out.push_back(static_cast<char>((u & 0x7f) | 0x80));
    u >>= 7;
  }
  out.push_back(static_cast<char>(u));
}
void put_string(std::string& out, std::string_view s) {
  put_long(out, static_cast<std::int64_t>(s.size()));
  out.append(s);
}
std::string framed(int id, std::string_view body) {
  std::string out;
  avro::write_frame_header(out, id);
  out.append(body);
  return out;
}

// The seed producer's event, as the Python client writes it.
std::string producer_event_body(std::int64_t ts) {
  std::string b;
  put_string(b, "123456");
  put_string(b, "financial");
  put_string(b, "FINANCE");
  put_long(b, ts);
  put_string(b, "dummy-payload 9d3c");
  return b;
}

int register_file(TestContext& c, const std::string& subject, const std::string& path) {
  int id = -1;
  REQUIRE(c.registry.register_schema(subject, "AVRO", slurp(path), id).is_ok());
  return id;
}

int register_text(TestContext& c, const std::string& subject, const std::string& text) {
  int id = -1;
  REQUIRE(c.registry.register_schema(subject, "AVRO", text, id).is_ok());
  return id;
}

const char* const kAllTypes = R"({"type":"record","name":"All","fields":[
    {"name":"n","type":"null"},{"name":"b","type":"boolean"},{"name":"i","type":"int"},
    {"name":"l","type":"long"},{"name":"f","type":"float"},{"name":"d","type":"double"},
    {"name":"by","type":"bytes"},{"name":"s","type":"string"},
    {"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]}},
    {"name":"fx","type":{"type":"fixed","name":"Two","size":2}},
    {"name":"a","type":{"type":"array","items":"long"}},
    {"name":"m","type":{"type":"map","values":"string"}},
    {"name":"u","type":["null","string"]},
    {"name":"r","type":{"type":"record","name":"Inner","fields":[{"name":"x","type":"int"}]}}]})";

Batch of(std::vector<std::string> payloads) {
  Batch b;
  for (auto& p : payloads) b.records.emplace_back().payload = std::move(p);
  return b;
}

}  // namespace

TEST_CASE("avro_decode: a hand-framed seed event decodes; timestamps stay epoch milliseconds") {
  StageHarness<avro::AvroDecode> h;
  const int id = register_file(h.context, "producer.to.processor-value", kProducerSchema);
  Batch b = of({framed(id, producer_event_body(1733011200123))});
  REQUIRE(h.process(b).empty());
  const Value& v = b.records[0].value;
  CHECK(*v.field("origin_service_id") == Value("123456"));
  CHECK(*v.field("origin_service_type") == Value("financial"));
  CHECK(*v.field("destination_service_type") == Value("FINANCE"));
  CHECK(*v.field("event_timestamp") == Value(std::int64_t{1733011200123}));
  CHECK(*v.field("payload") == Value("dummy-payload 9d3c"));
  CHECK(v.as<Struct>()->schema->names().front() == "origin_service_id");
}

TEST_CASE("avro_encode then avro_decode: the bytes are Avro's and the values come back") {
  StageHarness<avro::AvroEncode> enc(
      {{"topic", std::string("producer.to.processor")}, {"schema_file", kProducerSchema}});
  enc->start();
  auto subjects = enc.context.registry.subjects();
  REQUIRE(subjects.count("producer.to.processor-value") == 1);
  const int id = subjects["producer.to.processor-value"].back();

  Batch b;
  auto schema = StructSchema::make({"origin_service_id", "origin_service_type",
                                    "destination_service_type", "event_timestamp", "payload"});
  b.records.emplace_back().value =
      Struct{schema, {Value("123456"), Value("financial"), Value("FINANCE"),
                      Value(std::int64_t{1733011200123}), Value("dummy-payload 9d3c")}};
  REQUIRE(enc.process(b).empty());
  CHECK(std::string(b.records[0].payload) == framed(id, producer_event_body(1733011200123)));

  StageHarness<avro::AvroDecode> dec({}, [&](TestContext& c) {
    register_file(c, "producer.to.processor-value", kProducerSchema);
  });
  REQUIRE(dec.process(b).empty());
  CHECK(*b.records[0].value.field("event_timestamp") == Value(std::int64_t{1733011200123}));
}

TEST_CASE("avro_decode: every Avro type the schema can hold") {
  const std::string schema = kAllTypes;
  StageHarness<avro::AvroDecode> h;
  const int id = register_text(h.context, "all-value", schema);
  std::string body;
  body.push_back(1);                                    // b = true
  put_long(body, -7);                                   // i
  put_long(body, 1LL << 40);                            // l
  const float f = 0.1f;                                 // read as 0.1, written back as 0.1f
  body.append(reinterpret_cast<const char*>(&f), 4);    // little-endian on this machine
  const double d = -2.25;
  body.append(reinterpret_cast<const char*>(&d), 8);
  put_string(body, std::string("\0\xff", 2));           // bytes
  put_string(body, "h\xc3\xa9");                        // string (UTF-8)
  put_long(body, 1);                                    // enum GREEN
  body.append("xy");                                    // fixed
  const std::size_t array_at = body.size();
  put_long(body, -2);                                   // array: a block of 2 with its size
  put_long(body, 2);
  put_long(body, 3);
  put_long(body, -4);
  put_long(body, 0);
  const std::size_t array_end = body.size();
  put_long(body, 1);                                    // map: one entry
  put_string(body, "k");
  put_string(body, "v");
  put_long(body, 0);
  put_long(body, 1);                                    // union branch 1: string
  put_string(body, "u");
  put_long(body, 42);                                   // r.x
  Batch b = of({framed(id, body)});
  auto rejected = h.process(b);
  REQUIRE_MESSAGE(rejected.empty(), (rejected.empty() ? "" : rejected[0].reason));
  const Value& v = b.records[0].value;
  CHECK(v.field("n")->is_null());
  CHECK(*v.field("b") == Value(true));
  CHECK(*v.field("i") == Value(std::int64_t{-7}));
  CHECK(*v.field("l") == Value(std::int64_t{1LL << 40}));
  CHECK(*v.field("f") == Value(0.1));  // as written, not 0.10000000149011612
  CHECK(*v.field("d") == Value(-2.25));
  CHECK(*v.field("by") == Value(Bytes{std::string("\0\xff", 2)}));
  CHECK(*v.field("s") == Value("h\xc3\xa9"));
  CHECK(*v.field("e") == Value("GREEN"));
  CHECK(*v.field("fx") == Value(Bytes{"xy"}));
  CHECK(*v.field("a") == Value(List{Value(std::int64_t{3}), Value(std::int64_t{-4})}));
  CHECK(*v.field("m")->field("k") == Value("v"));
  CHECK(*v.field("u") == Value("u"));
  CHECK(*v.field("r")->field("x") == Value(std::int64_t{42}));

  // and back: avro_encode writes the same bytes, its array block without the byte size
  std::string written = body.substr(0, array_at);
  put_long(written, 2);
  put_long(written, 3);
  put_long(written, -4);
  put_long(written, 0);
  written += body.substr(array_end);
  StageHarness<avro::AvroEncode> enc({{"subject", std::string("all-value")}},
                                     [&](TestContext& c) { register_text(c, "all-value", schema); });
  enc->start();
  REQUIRE(enc.process(b).empty());
  CHECK(std::string(b.records[0].payload) == framed(1, written));
}

TEST_CASE("avro_encode: a struct in a union of records and maps takes the branch with its very fields") {
  // A decoded map {"k":"v"} went into the first record branch, as Opt{a: null}: its data lost.
  const std::string schema = R"({"type":"record","name":"U","fields":[
    {"name":"m","type":["null",{"type":"record","name":"Opt","fields":[{"name":"a","type":["null","string"],"default":null}]},
                        {"type":"map","values":"string"}]},
    {"name":"r","type":[{"type":"map","values":"string"},{"type":"record","name":"R","fields":[{"name":"x","type":"string"}]}]}]})";
  StageHarness<avro::AvroEncode> enc({{"subject", std::string("u-value")}},
                                     [&](TestContext& c) { register_text(c, "u-value", schema); });
  enc->start();
  auto map_shape = StructSchema::make({"k"});
  auto record_shape = StructSchema::make({"x"});
  auto top = StructSchema::make({"m", "r"});
  Batch b;
  b.records.emplace_back().value = Struct{top, {Value(Struct{map_shape, {Value("v")}}),
                                                Value(Struct{record_shape, {Value("1")}})}};
  REQUIRE(enc.process(b).empty());
  std::string expected;
  put_long(expected, 2);  // m: the map branch
  put_long(expected, 1);
  put_string(expected, "k");
  put_string(expected, "v");
  put_long(expected, 0);
  put_long(expected, 1);  // r: the record branch, not the map before it
  put_string(expected, "1");
  CHECK(std::string(b.records[0].payload) == framed(1, expected));
}

TEST_CASE("avro_encode: a timestamp goes into timestamp-micros and -nanos fields in their unit, else milliseconds") {
  // Avro C drops logicalType; read from the schema's text (a protobuf Timestamp into a
  // timestamp-micros field was written 1000 times too small).
  const std::string schema = R"({"type":"record","name":"T","namespace":"n","fields":[
    {"name":"micros","type":{"type":"long","logicalType":"timestamp-micros"}},
    {"name":"maybe","type":["null",{"type":"long","logicalType":"local-timestamp-micros"}]},
    {"name":"millis","type":{"type":"long","logicalType":"timestamp-millis"}},
    {"name":"before","type":{"type":"long","logicalType":"timestamp-millis"}},
    {"name":"nanos","type":{"type":"long","logicalType":"timestamp-nanos"}}]})";
  StageHarness<avro::AvroEncode> enc({{"subject", std::string("t-value")}},
                                     [&](TestContext& c) { register_text(c, "t-value", schema); });
  enc->start();
  const Timestamp ts{1700000000123456};
  auto shape = StructSchema::make({"micros", "maybe", "millis", "before", "nanos"});
  Batch b;
  b.records.emplace_back().value = Struct{shape, {Value(ts), Value(ts), Value(ts), Value(Timestamp{-1500}), Value(ts)}};
  REQUIRE(enc.process(b).empty());
  std::string expected;
  put_long(expected, 1700000000123456);
  put_long(expected, 1);  // the union's long branch
  put_long(expected, 1700000000123456);
  put_long(expected, 1700000000123);
  put_long(expected, -2);  // -1.5 ms is in the millisecond before -1 (floor), not -1
  put_long(expected, 1700000000123456000);
  CHECK(std::string(b.records[0].payload) == framed(1, expected));
}

TEST_CASE("avro_encode: a number or decimal text goes into a decimal as its unscaled integer") {
  // Avro C drops logicalType: the text's own bytes were written ("12.34" read back by
  // fastavro as 2112952861). Bytes as Confluent's serializer (Java BigInteger) writes them.
  const std::string schema = R"({"type":"record","name":"D","namespace":"n","fields":[
    {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
    {"name":"maybe","type":["null",{"type":"bytes","logicalType":"decimal","precision":5,"scale":1}]},
    {"name":"fx","type":{"type":"fixed","name":"Amount","size":4,"logicalType":"decimal","precision":8,"scale":3}},
    {"name":"raw","type":{"type":"bytes","logicalType":"decimal","precision":4,"scale":0}},
    {"name":"plain","type":"bytes"}]})";
  StageHarness<avro::AvroEncode> enc({{"subject", std::string("d-value")}},
                                     [&](TestContext& c) { register_text(c, "d-value", schema); });
  enc->start();
  auto shape = StructSchema::make({"price", "maybe", "fx", "raw", "plain"});
  auto encode = [&](Value price, Value maybe, Value fx) {
    Batch b;
    b.records.emplace_back().value =
        Struct{shape, {std::move(price), std::move(maybe), std::move(fx), Value(Bytes{std::string("\x01", 1)}), Value("12.34")}};
    auto rejected = enc.process(b);
    return rejected.empty() ? std::string(b.records[0].payload) : "rejected: " + rejected[0].reason;
  };
  std::string expected;
  put_string(expected, std::string("\x04\xd2", 2));  // 1234
  put_long(expected, 1);                               // the union's decimal branch
  put_string(expected, std::string("\xfb", 1));        // -5
  expected += std::string("\x00\x00\x1b\x58", 4);      // 7000, sign-extended to 4 bytes
  put_string(expected, std::string("\x01", 1));        // unscaled bytes given: as they are
  put_string(expected, "12.34");                       // not a decimal: the text's bytes
  CHECK(encode(Value("12.34"), Value(-0.5), Value(std::int64_t{7})) == framed(1, expected));
  CHECK(encode(Value(12.34), Value("-0.50"), Value("7.000")) == framed(1, expected));
  // Never rounded, never past the precision or the fixed's size.
  CHECK(encode(Value("12.345"), Value(), Value(0)).find("precision 10 and scale 2") != std::string::npos);
  CHECK(encode(Value("123456789.01"), Value(), Value(0)).find("precision 10") != std::string::npos);
  CHECK(encode(Value("1"), Value(), Value("123456.789")).find("precision 8 and scale 3") != std::string::npos);
  CHECK(encode(Value("abc"), Value(), Value(0)).rfind("rejected", 0) == 0);
  CHECK(encode(Value("-1e2"), Value(), Value(0)).find(std::string("\x04\xd8\xf0", 3)) != std::string::npos);  // -10000
}

TEST_CASE("avro_decode: timestamp-millis and -micros fields are timestamps, decimals their exact text") {
  // Avro C drops logicalType: a micros field was an integer that an output field of
  // millis took as it was (1000 times too far), and a decimal was its unscaled bytes.
  const std::string schema = R"({"type":"record","name":"L","namespace":"n","fields":[
    {"name":"micros","type":{"type":"long","logicalType":"timestamp-micros"}},
    {"name":"maybe","type":["null",{"type":"long","logicalType":"timestamp-millis"}]},
    {"name":"millis","type":{"type":"long","logicalType":"timestamp-millis"}},
    {"name":"nanos","type":{"type":"long","logicalType":"timestamp-nanos"}},
    {"name":"plain","type":"long","logicalType":"timestamp-millis"},
    {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
    {"name":"small","type":["null",{"type":"bytes","logicalType":"decimal","precision":5,"scale":4}]},
    {"name":"fx","type":{"type":"fixed","name":"Amount","size":4,"logicalType":"decimal","precision":8,"scale":3}},
    {"name":"raw","type":"bytes"}]})";
  StageHarness<avro::AvroDecode> h;
  const int id = register_text(h.context, "l-value", schema);
  std::string body;
  put_long(body, 1700000000123456);
  put_long(body, 1);  // the union's timestamp branch
  put_long(body, -1500);
  put_long(body, 1700000000123);
  put_long(body, 1700000000123456789);
  put_long(body, 1700000000123);                  // logicalType on the field, not its type: a long
  put_string(body, std::string("\xfb\x2e", 2));  // -1234
  put_long(body, 1);
  put_string(body, std::string("\x05", 1));       // 5 at scale 4
  body += std::string("\xff\xff\xe4\xa8", 4);     // -7000, sign-extended
  put_string(body, std::string("\x04\xd2", 2));
  Batch b = of({framed(id, body)});
  REQUIRE(h.process(b).empty());
  const Value& v = b.records[0].value;
  CHECK(*v.field("micros") == Value(Timestamp{1700000000123456}));
  CHECK(*v.field("maybe") == Value(Timestamp{-1500000}));
  CHECK(*v.field("millis") == Value(Timestamp{1700000000123000}));
  CHECK(*v.field("nanos") == Value(std::int64_t{1700000000123456789}));  // past microseconds: as written
  CHECK(*v.field("plain") == Value(std::int64_t{1700000000123}));
  CHECK(*v.field("price") == Value("-12.34"));
  CHECK(*v.field("small") == Value("0.0005"));
  CHECK(*v.field("fx") == Value("-7.000"));
  CHECK(*v.field("raw") == Value(Bytes{std::string("\x04\xd2", 2)}));

  // Routed into an output schema of milliseconds, the microseconds' instant is kept.
  const std::string out_schema = R"({"type":"record","name":"O","fields":[
    {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
    {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}}]})";
  StageHarness<avro::AvroEncode> enc({{"subject", std::string("o-value")}},
                                     [&](TestContext& c) { register_text(c, "o-value", out_schema); });
  enc->start();
  Batch routed;
  routed.records.emplace_back().value =
      Struct{StructSchema::make({"at", "price"}), {*v.field("micros"), *v.field("price")}};
  REQUIRE(enc.process(routed).empty());
  std::string expected;
  put_long(expected, 1700000000123);
  put_string(expected, std::string("\xfb\x2e", 2));
  CHECK(std::string(routed.records[0].payload) == framed(1, expected));
}

// Schemas Avro C and Java take: a logicalType that is not a string is ignored (it stopped
// the pipeline: nlohmann's value() threw), and a decimal of absurd precision is plain
// bytes (its text was padded to 20,000,000 digits per record).
TEST_CASE("avro_decode: a non-string logicalType is ignored, a decimal past 1000 digits stays bytes") {
  StageHarness<avro::AvroDecode> h;
  const int id = register_text(h.context, "odd-value", R"({"type":"record","name":"R","fields":[
    {"name":"a","type":{"type":"bytes","logicalType":null}},
    {"name":"b","type":{"type":"long","logicalType":7}},
    {"name":"c","type":{"type":"bytes","logicalType":"decimal","precision":20000000,"scale":20000000}}]})");
  std::string body;
  put_long(body, 1), body += '\x05';
  put_long(body, 9);
  put_long(body, 1), body += '\x01';
  Batch b = of({framed(id, body)});
  REQUIRE(h.process(b).empty());
  const Value& v = b.records[0].value;
  CHECK(*v.field("a") == Value(Bytes{std::string("\x05")}));
  CHECK(*v.field("b") == Value(std::int64_t{9}));
  CHECK(*v.field("c") == Value(Bytes{std::string("\x01")}));
}

// A logical type is its branch's: an int branch of a union whose long branch is a
// timestamp stays an int (it became 1970-01-01T00:00:00.006Z), a plain fixed beside a
// decimal fixed stays bytes (it became "2.58").
TEST_CASE("avro_decode: a union's logical type applies to its own branch only") {
  StageHarness<avro::AvroDecode> h;
  const int id = register_text(h.context, "branches-value", R"({"type":"record","name":"R","fields":[
    {"name":"t","type":["null","int",{"type":"long","logicalType":"timestamp-millis"}]},
    {"name":"m","type":["null",{"type":"fixed","name":"Hash","size":2},
                        {"type":"fixed","name":"Amt","size":2,"logicalType":"decimal","precision":4,"scale":2}]}]})");
  auto body = [](int t_branch, int m_branch) {
    std::string b;
    put_long(b, t_branch), put_long(b, 6);
    put_long(b, m_branch), b += "\x01\x02";
    return b;
  };
  Batch b = of({framed(id, body(1, 1)), framed(id, body(2, 2))});
  REQUIRE(h.process(b).empty());
  CHECK(*b.records[0].value.field("t") == Value(std::int64_t{6}));
  CHECK(*b.records[0].value.field("m") == Value(Bytes{std::string("\x01\x02")}));
  CHECK(*b.records[1].value.field("t") == Value(Timestamp{6000}));
  CHECK(*b.records[1].value.field("m") == Value("2.58"));
}

// Garbage framed as ever-new schema ids cost a registry round trip per record: past 20
// unknown ids a second, a new id's records are refused without asking.
TEST_CASE("avro_decode: at most 20 unknown schema ids a second are asked about") {
  StageHarness<avro::AvroDecode> h;
  std::vector<std::string> payloads;
  for (int id = 1000; id < 1025; ++id) payloads.push_back(framed(id, std::string("\x02", 1)));
  Batch b = of(payloads);
  auto rejected = h.process(b);
  REQUIRE(rejected.size() == 25);
  int asked = 0, not_asked = 0;
  for (const auto& r : rejected) {
    if (r.reason.find("not looked up: more than 20 unknown schema ids") != std::string::npos) ++not_asked;
    else if (r.reason.find("unknown schema id") != std::string::npos) ++asked;
  }
  CHECK(asked == 20);
  CHECK(not_asked == 5);
}

TEST_CASE("avro_decode: past its most writer schemas the cache starts again; earlier values stay whole") {
  // A subject per tenant: every writer schema was kept for the task's life.
  StageHarness<avro::AvroDecode> h;
  std::vector<int> ids;
  for (std::size_t i = 0; i < avro::AvroDecode::kMostSchemas + 3; ++i)
    ids.push_back(register_text(h.context, "t" + std::to_string(i) + "-value",
                                R"({"type":"record","name":"T)" + std::to_string(i) +
                                    R"(","fields":[{"name":"s","type":"string"}]})"));
  auto body = [](const std::string& text) {
    std::string b;
    put_string(b, text);
    return b;
  };
  Batch first = of({framed(ids[0], body("first"))});
  REQUIRE(h.process(first).empty());
  Batch recycled;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    recycled.recycle();
    recycled.add().payload = framed(ids[i], body("v" + std::to_string(i)));
    REQUIRE(h.process(recycled).empty());
    CHECK(*recycled.records[0].value.field("s") == Value("v" + std::to_string(i)));
    CHECK(h->schemas_cached() <= avro::AvroDecode::kMostSchemas);
  }
  Batch again = of({framed(ids[0], body("again")), framed(ids.back(), body("last"))});
  REQUIRE(h.process(again).empty());
  CHECK(*again.records[0].value.field("s") == Value("again"));
  CHECK(again.records[0].value.as<Struct>()->schema->type_name() == "T0");
  CHECK(*first.records[0].value.field("s") == Value("first"));  // decoded before the cache started again
  CHECK(first.records[0].value.as<Struct>()->schema->type_name() == "T0");
}

TEST_CASE("avro_decode: a value decoded into an earlier record's storage equals a fresh decode") {
  // Batch::add hands each record the struct an earlier record decoded into: every part of
  // it must be overwritten (a shorter array, a union now null, shorter strings, another
  // enum symbol), nothing of the earlier record may show.
  auto body_of = [](bool big) {
    std::string body;
    body.push_back(big ? 1 : 0);                          // b
    put_long(body, big ? -7 : 5);                         // i
    put_long(body, big ? 1LL << 40 : 3);                  // l
    const float f = big ? 1.5f : -0.5f;
    body.append(reinterpret_cast<const char*>(&f), 4);
    const double d = big ? -2.25 : 8.0;
    body.append(reinterpret_cast<const char*>(&d), 8);
    put_string(body, big ? std::string("\0\xff\x01", 3) : std::string("z"));  // bytes
    put_string(body, big ? "a string longer than the small-string buffer" : "s");
    put_long(body, big ? 1 : 0);                          // enum GREEN / RED
    body.append(big ? "xy" : "ab");                       // fixed
    if (big) {                                            // array: 3 elements, or none
      put_long(body, 3);
      put_long(body, 3);
      put_long(body, -4);
      put_long(body, 5);
    }
    put_long(body, 0);
    put_long(body, big ? 2 : 1);                          // map
    put_string(body, "k");
    put_string(body, big ? "v" : "w");
    if (big) {
      put_string(body, "k2");
      put_string(body, "v2");
    }
    put_long(body, 0);
    put_long(body, big ? 1 : 0);                          // union: string, or null
    if (big) put_string(body, "u");
    put_long(body, big ? 42 : -1);                        // r.x
    return body;
  };
  StageHarness<avro::AvroDecode> h;
  const int id = register_text(h.context, "all-value", kAllTypes);
  for (bool second : {false, true}) {
    Batch fresh = of({framed(id, body_of(second))});
    REQUIRE(h.process(fresh).empty());
    Batch reused;
    reused.add().payload = framed(id, body_of(true));
    REQUIRE(h.process(reused).empty());
    reused.recycle();
    reused.add().payload = framed(id, body_of(second));
    REQUIRE(h.process(reused).empty());
    CHECK(reused.records[0].value == fresh.records[0].value);
  }
}

TEST_CASE("avro_decode: a reader schema resolves the writer's (dropped fields, promotion)") {
  const std::string writer = R"({"type":"record","name":"E","fields":[
    {"name":"id","type":"int"},{"name":"gone","type":"string"}]})";
  const std::string reader = R"({"type":"record","name":"E","fields":[{"name":"id","type":"long"}]})";
  const std::string path = "avro_test_reader.avsc";
  { std::ofstream(path) << reader; }
  StageHarness<avro::AvroDecode> h({{"reader_schema_file", path}});
  const int id = register_text(h.context, "e-value", writer);
  std::string body;
  put_long(body, 5);
  put_string(body, "old");
  Batch b = of({framed(id, body), framed(id, body)});
  auto first = h.process(b);
  REQUIRE_MESSAGE(first.empty(), (first.empty() ? "" : first[0].reason));
  for (const auto& r : b.records) {
    CHECK(*r.value.field("id") == Value(std::int64_t{5}));
    CHECK(r.value.field("gone") == nullptr);
    CHECK(r.value.as<Struct>()->fields.size() == 1);
  }
  // Avro C cannot fill a reader field the writer lacks from its default: said, not guessed.
  const int older = register_text(h.context, "x-value",
      R"({"type":"record","name":"E","fields":[{"name":"other","type":"string"}]})");
  Batch c = of({framed(older, "\x02" "a")});
  auto rejected = h.process(c);
  REQUIRE(rejected.size() == 1);
  CHECK(rejected[0].reason.find("cannot be read as the schema of") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("avro_decode: a reader field the writer lacks takes its default, in nested records too") {
  // The most common evolution: a field added with a default. Avro C 1.11's resolution
  // refuses it ("Reader field ... doesn't appear in writer"); the decoder fills it.
  const std::string v1 = R"({"type":"record","name":"E","namespace":"ns","fields":[
    {"name":"id","type":"int"},{"name":"name","type":"string"},
    {"name":"inner","type":{"type":"record","name":"I","fields":[{"name":"a","type":"int"}]}},
    {"name":"items","type":{"type":"array","items":"I"}}]})";
  const std::string v2 = R"({"type":"record","name":"E","namespace":"ns","fields":[
    {"name":"id","type":"int"},{"name":"region","type":"string"},{"name":"name","type":"string"},
    {"name":"inner","type":{"type":"record","name":"I","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}},
    {"name":"items","type":{"type":"array","items":"I"}}]})";
  const std::string reader = R"({"type":"record","name":"E","namespace":"ns","fields":[
    {"name":"id","type":"long"},{"name":"region","type":"string","default":"eu"},{"name":"name","type":"string"},
    {"name":"inner","type":{"type":"record","name":"I","fields":[{"name":"a","type":"int"},
      {"name":"b","type":"int","default":7}]}},
    {"name":"items","type":{"type":"array","items":"I"}},
    {"name":"when","type":{"type":"long","logicalType":"timestamp-millis"},"default":1000},
    {"name":"opt","type":["null","string"],"default":null}]})";
  const std::string path = "avro_test_reader_defaults.avsc";
  { std::ofstream(path) << reader; }
  StageHarness<avro::AvroDecode> h({{"reader_schema_file", path}});
  const int old_id = register_text(h.context, "e1-value", v1);
  const int new_id = register_text(h.context, "e2-value", v2);
  std::string old_body;
  put_long(old_body, 5);
  put_string(old_body, "n");
  put_long(old_body, 1);  // inner.a
  put_long(old_body, 2);  // two items
  put_long(old_body, 2);
  put_long(old_body, 3);
  put_long(old_body, 0);
  std::string new_body;
  put_long(new_body, 6);
  put_string(new_body, "us");
  put_string(new_body, "m");
  put_long(new_body, 1);
  put_long(new_body, 9);  // inner.b given
  put_long(new_body, 0);  // no items
  const Value expected_old = [&] {
    const auto i = StructSchema::make({"a", "b"}, "ns.I");
    return Value(Struct{StructSchema::make({"id", "region", "name", "inner", "items", "when", "opt"}, "ns.E"),
                        {Value(std::int64_t{5}), Value("eu"), Value("n"), Value(Struct{i, {Value(1), Value(7)}}),
                         Value(List{Value(Struct{i, {Value(2), Value(7)}}), Value(Struct{i, {Value(3), Value(7)}})}),
                         Value(Timestamp{1000000}), Value()}});
  }();
  for (int round = 0; round < 2; ++round) {  // the second into recycled storage
    Batch b = of({framed(old_id, old_body), framed(new_id, new_body), framed(old_id, old_body)});
    auto rejected = h.process(b);
    REQUIRE_MESSAGE(rejected.empty(), (rejected.empty() ? "" : rejected[0].reason));
    for (int k : {0, 2}) {
      const Value& v = b.records[static_cast<std::size_t>(k)].value;
      CHECK(v == expected_old);
      CHECK(v.as<Struct>()->schema->names() ==
            std::vector<std::string>{"id", "region", "name", "inner", "items", "when", "opt"});
    }
    const Value& n = b.records[1].value;
    CHECK(*n.field("region") == Value("us"));
    CHECK(*n.field("inner")->field("b") == Value(std::int64_t{9}));
    CHECK(*n.field("when") == Value(Timestamp{1000000}));
    CHECK(n.field("opt")->is_null());
  }
  std::remove(path.c_str());
}

TEST_CASE("avro_decode: a reader enum is read by symbol when it begins with the writer's; else refused") {
  // Avro C's resolver keeps a symbol's position: a reader listing the symbols in another
  // order read C as A, and one with fewer symbols crashed the process (a symbol past its end).
  const std::string writer = R"({"type":"record","name":"E","fields":[
    {"name":"c","type":{"type":"enum","name":"C","symbols":["A","B","C"]}}]})";
  auto reader_with = [](const std::string& symbols) {
    return R"({"type":"record","name":"E","fields":[{"name":"c","type":{"type":"enum","name":"C","symbols":[)" +
           symbols + "]}}]}";
  };
  const std::string path = "avro_test_enum_reader.avsc";
  for (const std::string symbols : {R"("B","A")", R"("C","B","A")"}) {
    { std::ofstream(path) << reader_with(symbols); }
    StageHarness<avro::AvroDecode> h({{"reader_schema_file", path}});
    const int id = register_text(h.context, "e-value", writer);
    Batch b = of({framed(id, "\x04")});  // symbol 2: C
    auto rejected = h.process(b);
    REQUIRE(rejected.size() == 1);
    CHECK(rejected[0].reason.find("enum C: the writer's symbols are not the first ones of the reader's") !=
          std::string::npos);
  }
  { std::ofstream(path) << reader_with(R"("A","B","C","D")"); }  // appended: read by name
  StageHarness<avro::AvroDecode> h({{"reader_schema_file", path}});
  const int id = register_text(h.context, "e-value", writer);
  Batch b = of({framed(id, "\x04"), framed(id, std::string(1, '\0'))});
  auto rejected = h.process(b);
  REQUIRE_MESSAGE(rejected.empty(), rejected[0].reason);
  CHECK(*b.records[0].value.field("c") == Value("C"));
  CHECK(*b.records[1].value.field("c") == Value("A"));
  std::remove(path.c_str());
}

TEST_CASE("avro_decode: malformed values are rejected with the reason") {
  StageHarness<avro::AvroDecode> h({{"max_elements", std::int64_t{1000}}});
  const int seed = register_file(h.context, "producer.to.processor-value", kProducerSchema);
  const int nulls = register_text(h.context, "n-value", R"({"type":"array","items":"null"})");
  const int deep = register_text(h.context, "d-value",
      R"({"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]})");
  const int wide = register_text(h.context, "w-value", [] {  // records of 50 null fields
    std::string fields;
    for (int i = 0; i < 50; ++i) fields += std::string(i ? "," : "") + R"({"name":"f)" + std::to_string(i) + R"(","type":"null"})";
    return R"({"type":"array","items":{"type":"record","name":"W","fields":[)" + fields + "]}}";
  }());
  std::string wide_items;  // 100 items of no bytes: 100 + 100 x 50 over a budget of 1000
  put_long(wide_items, 100);
  put_long(wide_items, 0);
  std::string not_utf8;
  put_long(not_utf8, 2);
  not_utf8 += "\xff\xfe";
  const int color = register_text(h.context, "c-value",
      R"({"type":"enum","name":"C","symbols":["A"]})");
  const int text = register_text(h.context, "s-value", R"("string")");
  const int proto = [&] {
    int id = -1;
    REQUIRE(h.context.registry.register_schema("p-value", "PROTOBUF", "syntax = \"proto3\";", id).is_ok());
    return id;
  }();
  std::string huge_len;
  put_long(huge_len, 1LL << 40);
  std::string negative_len;
  put_long(negative_len, -5);
  std::string many_nulls;
  put_long(many_nulls, 1LL << 62);
  std::string deep_body;
  for (int i = 0; i < 500; ++i) put_long(deep_body, 1);
  put_long(deep_body, 0);
  std::string trailing = producer_event_body(1) + "xx";
  std::string truncated = producer_event_body(1).substr(0, 10);
  std::string bad_enum;
  put_long(bad_enum, 3);

  struct Case {
    std::string payload;
    const char* reason;
  };
  std::vector<Case> cases = {
      {"", "too short"},
      {std::string("\x01\x00\x00\x00\x01", 5), "magic byte"},
      {framed(999, "x"), "unknown schema id 999"},
      {framed(0, "x"), "schema id 0 is not one a registry gives"},
      {framed(-5, "x"), "schema id -5 is not one a registry gives"},
      {framed(proto, ""), "not AVRO"},
      {framed(seed, truncated), "runs past the end"},
      {framed(seed, huge_len), "runs past the end"},
      {framed(text, negative_len), "negative length"},
      {framed(nulls, many_nulls), "max_elements"},
      {framed(wide, wide_items), "record fields (option max_elements)"},
      {framed(text, not_utf8), "not valid UTF-8"},
      {framed(deep, deep_body), "nested deeper"},
      {framed(seed, trailing), "bytes after the end"},
      {framed(color, bad_enum), "names no symbol"},
      {framed(seed, std::string(11, '\xff')), "longer than 10 bytes"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.reason);
    Batch b = of({c.payload});
    auto rejected = h.process(b);
    REQUIRE(rejected.size() == 1);
    CHECK_MESSAGE(rejected[0].reason.find(c.reason) != std::string::npos, rejected[0].reason);
    CHECK(b.records.empty());
  }
}

TEST_CASE("avro_decode: nine bytes claiming a million nulls are refused, not decoded to ~50 MB") {
  StageHarness<avro::AvroDecode> h;  // the default max_elements, 1,000,000
  const int nulls = register_text(h.context, "n-value", R"({"type":"array","items":"null"})");
  std::string million;
  put_long(million, 1'000'000);
  put_long(million, 0);
  std::string few;  // a short array of nulls is still a value
  put_long(few, 3);
  put_long(few, 0);
  Batch b = of({framed(nulls, million), framed(nulls, few)});
  auto rejected = h.process(b);
  REQUIRE(rejected.size() == 1);
  CHECK_MESSAGE(rejected[0].reason.find("of no bytes") != std::string::npos, rejected[0].reason);
  REQUIRE(b.records.size() == 1);
  CHECK(b.records[0].value.as<List>()->size() == 3);
}

TEST_CASE("avro_decode: random bytes after a valid header never crash") {
  StageHarness<avro::AvroDecode> h;
  const int id = register_file(h.context, "producer.to.processor-value", kProducerSchema);
  const std::string good = producer_event_body(1733011200123);
  std::mt19937 rng(7);
  int kept = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string body = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) body[rng() % body.size()] = static_cast<char>(rng());
    if (rng() % 4 == 0) body.resize(rng() % body.size());
    Batch b = of({framed(id, body)});
    auto rejected = h.process(b);
    kept += static_cast<int>(b.records.size());
    CHECK(rejected.size() + b.records.size() == 1);
  }
  CHECK(kept > 0);
}

TEST_CASE("avro_encode: subjects from the router's header, the destination topic, or the latest version") {
  StageHarness<avro::AvroEncode> enc({{"schema_file", kConsumerSchema}});
  enc->start();  // no default subject: nothing registered yet
  CHECK(enc.context.registry.subjects().empty());
  auto schema = StructSchema::make({"producer_service_id", "processor_service_id", "destination_type",
                                    "producer_event_timestamp", "processor_event_timestamp", "payload"});
  auto make = [&](std::string subject_header, std::string topic) {
    Record r;
    r.value = Struct{schema, {Value("1"), Value("p"), Value("FINANCE"), Value(std::int64_t{1}),
                              Value(std::int64_t{2}), Value("x")}};
    if (!subject_header.empty()) r.headers.push_back({"pipehost.subject", subject_header});
    r.headers.push_back({"other", "kept"});
    r.destination_topic = std::move(topic);
    return r;
  };
  Batch b;
  b.records.push_back(make("processor.to.consumer-value", "processor.to.finance"));
  b.records.push_back(make("", "processor.to.marketing"));
  b.records.push_back(make("", ""));
  auto rejected = enc.process(b);
  REQUIRE(rejected.size() == 1);
  CHECK(rejected[0].reason.find("no subject for this record") != std::string::npos);
  REQUIRE(b.records.size() == 2);
  CHECK(b.records[0].headers.size() == 1);  // the subject header is consumed, others kept
  CHECK(b.records[0].headers[0].key == "other");
  auto subjects = enc.context.registry.subjects();
  CHECK(subjects.count("processor.to.consumer-value") == 1);
  CHECK(subjects.count("processor.to.marketing-value") == 1);

  SUBCASE("a field that does not fit the schema is named") {
    Batch c;
    c.records.push_back(make("processor.to.consumer-value", ""));
    c.records[0].value = Struct{StructSchema::make({"payload"}), {Value("x")}};
    auto r = enc.process(c);
    REQUIRE(r.size() == 1);
    CHECK(r[0].reason.find("field 'producer_service_id' has no value (missing or null), and the schema "
                           "wants a string") != std::string::npos);
    c.records.push_back(make("processor.to.consumer-value", ""));
    c.records[0].value = Struct{StructSchema::make({"producer_service_id"}), {Value(std::int64_t{7})}};
    r = enc.process(c);
    REQUIRE(r.size() == 1);
    CHECK(r[0].reason.find("field 'producer_service_id' is not a string") != std::string::npos);
  }
}

TEST_CASE("avro_encode: without schema_file the subject's latest version is used; none is fatal") {
  const std::string v1 = R"({"type":"record","name":"R","fields":[{"name":"a","type":"long"}]})";
  const std::string v2 = R"({"type":"record","name":"R","fields":[{"name":"a","type":"long"},
    {"name":"b","type":["null","string"],"default":null}]})";
  StageHarness<avro::AvroEncode> enc({{"subject", std::string("r-value")}}, [&](TestContext& c) {
    register_text(c, "r-value", v1);
    register_text(c, "r-value", v2);
  });
  enc->start();
  Batch b;
  b.records.emplace_back().value = Struct{StructSchema::make({"a"}), {Value(std::int64_t{3})}};
  REQUIRE(enc.process(b).empty());
  std::string body;
  put_long(body, 3);
  put_long(body, 0);  // b: the null branch
  CHECK(std::string(b.records[0].payload) == framed(2, body));

  StageHarness<avro::AvroEncode> missing({{"subject", std::string("nothing-value")}});
  CHECK_THROWS_AS(missing->start(), FatalError);
}

// A subject evolved compatibly: a field added with a default. The records the stages
// make lack it; fastavro (Confluent's AvroSerializer) writes the default, and so does
// avro_encode (every record was rejected: "field 'region' is not a string").
TEST_CASE("avro_encode: a field the value lacks is written with its default") {
  const std::string v2 = R"({"type":"record","name":"R","namespace":"x","fields":[{"name":"a","type":"long"},
    {"name":"region","type":"string","default":"eu"},
    {"name":"tags","type":{"type":"array","items":"string"},"default":["t"]},
    {"name":"raw","type":"bytes","default":"ÿ"},
    {"name":"size","type":["int","null"],"default":7},
    {"name":"note","type":"string"}]})";
  StageHarness<avro::AvroEncode> enc({{"subject", std::string("r-value")}},
                                     [&](TestContext& c) { register_text(c, "r-value", v2); });
  enc->start();
  Batch b;
  b.records.emplace_back().value = Struct{StructSchema::make({"a", "note"}), {Value(std::int64_t{3}), Value("n")}};
  b.records.emplace_back().value = Struct{StructSchema::make({"a"}), {Value(std::int64_t{4})}};
  auto rejected = enc.process(b);
  std::string body;
  put_long(body, 3);
  put_long(body, 2), body += "eu";
  put_long(body, 1), put_long(body, 1), body += "t", put_long(body, 0);
  put_long(body, 1), body += '\xff';
  put_long(body, 0), put_long(body, 7);  // size: the int branch
  put_long(body, 1), body += "n";
  REQUIRE(b.records.size() == 1);
  CHECK(std::string(b.records[0].payload) == framed(1, body));
  // A field without a default still has to be there.
  REQUIRE(rejected.size() == 1);
  CHECK(rejected[0].reason.find("field 'note' has no value") != std::string::npos);
}

TEST_CASE("avro_encode: a schema whose JSON holds \\u0000 (a zero decimal's default) is read, and its default written") {
  const std::string schema = R"({"type":"record","name":"Nul","namespace":"x","doc":"a NUL: \u0000","fields":[
    {"name":"a","type":"long"},
    {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2},"default":"\u0000"}]})";
  StageHarness<avro::AvroEncode> enc({{"subject", std::string("nul-value")}},
                                     [&](TestContext& c) { register_text(c, "nul-value", schema); });
  enc->start();
  Batch b;
  b.records.emplace_back().value = Struct{StructSchema::make({"a"}), {Value(std::int64_t{5})}};
  CHECK(enc.process(b).empty());
  std::string body;
  put_long(body, 5);
  put_long(body, 1), body += '\0';  // the default: one zero byte, the decimal 0.00
  REQUIRE(b.records.size() == 1);
  CHECK(std::string(b.records[0].payload) == framed(1, body));
}

TEST_CASE("avro: decoded then encoded, a union keeps the record or map branch the value came from") {
  // Two records of the same shape, and a map next to a record with the map's one key:
  // chosen by shape, B came back as A and the map as M.
  const std::string schema = R"({"type":"record","name":"U","namespace":"x","fields":[
    {"name":"u","type":["null",{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]},
                               {"type":"record","name":"B","fields":[{"name":"x","type":"int"}]}]},
    {"name":"m","type":["null",{"type":"map","values":"long"},
                               {"type":"record","name":"M","fields":[{"name":"k","type":"long"}]}]}]})";
  StageHarness<avro::AvroDecode> dec;
  const int id = register_text(dec.context, "u-value", schema);
  std::string body;
  put_long(body, 2), put_long(body, 5);  // u: B{x: 5}
  put_long(body, 1);                     // m: the map {"k": 3}
  put_long(body, 1), put_string(body, "k"), put_long(body, 3), put_long(body, 0);
  Batch b = of({framed(id, body)});
  REQUIRE(dec.process(b).empty());
  StageHarness<avro::AvroEncode> enc({{"subject", std::string("u-value")}},
                                     [&](TestContext& c) { register_text(c, "u-value", schema); });
  enc->start();
  REQUIRE(enc.process(b).empty());
  REQUIRE(b.records.size() == 1);
  const std::string written(b.records[0].payload);
  CHECK(written.substr(5) == body);
}

TEST_CASE("avro_encode: a number past a float's range is refused for a float field, not written as infinity") {
  const std::string schema = R"({"type":"record","name":"F","namespace":"x","fields":[{"name":"f","type":"float"}]})";
  StageHarness<avro::AvroEncode> enc({{"subject", std::string("f-value")}},
                                     [&](TestContext& c) { register_text(c, "f-value", schema); });
  enc->start();
  Batch b;
  // 3.4028235e38: the largest float as the decoder gives it (its shortest text, a little
  // above the float as a double), written as that float.
  for (double d : {1e39, 3e38, -1e39, 3.4028235e38, -3.4028235e38, 3.41e38})
    b.records.emplace_back().value = Struct{StructSchema::make({"f"}), {Value(d)}};
  auto rejected = enc.process(b);
  REQUIRE(rejected.size() == 3);
  CHECK(rejected[0].reason.find("field 'f' is not a number within a float's range") != std::string::npos);
  REQUIRE(b.records.size() == 3);
  auto bytes = [](float f) { return std::string(reinterpret_cast<const char*>(&f), 4); };
  CHECK(std::string(b.records[0].payload).substr(5) == bytes(3e38f));
  CHECK(std::string(b.records[1].payload).substr(5) == bytes(std::numeric_limits<float>::max()));
  CHECK(std::string(b.records[2].payload).substr(5) == bytes(-std::numeric_limits<float>::max()));
}

// Defaults belong to their subject's schema: two subjects of one encoder (a router's) with
// a record of the same name each write their own; a named fixed's default is bytes.
TEST_CASE("avro_encode: defaults are per subject, and a named fixed takes its default as bytes") {
  const std::string a = R"({"type":"record","name":"E","namespace":"x","fields":[
    {"name":"h","type":{"type":"fixed","name":"Hash","size":2}},
    {"name":"g","type":"Hash","default":"\u00ff\u0001"},
    {"name":"region","type":"string","default":"eu"}]})";
  const std::string b = R"({"type":"record","name":"E","namespace":"x","fields":[
    {"name":"region","type":"string","default":"us"}]})";
  StageHarness<avro::AvroEncode> enc({}, [&](TestContext& c) {
    register_text(c, "a-value", a);
    register_text(c, "b-value", b);
  });
  enc->start();
  Batch batch;
  for (const char* topic : {"a", "b", "a"}) {  // a again after b: a's own default
    Record& r = batch.records.emplace_back();
    r.destination_topic = topic;
    r.value = Struct{StructSchema::make({"h"}), {Value(Bytes{"zz"})}};
  }
  REQUIRE(enc.process(batch).empty());
  std::string body_a = "zz";
  body_a += "\xff\x01";  // g: the fixed's two bytes
  put_long(body_a, 2), body_a += "eu";
  std::string body_b;
  put_long(body_b, 2), body_b += "us";
  CHECK(std::string(batch.records[0].payload) == framed(1, body_a));
  CHECK(std::string(batch.records[1].payload) == framed(2, body_b));
  CHECK(std::string(batch.records[2].payload) == framed(1, body_a));
}

// A default holding a record or a map: its bytes (at any depth, typed inline or by a name
// defined earlier) are code points 0-255 as at the top level, not the text's UTF-8.
TEST_CASE("avro_encode: bytes inside a record's or a map's default are one byte per code point") {
  const std::string schema = R"({"type":"record","name":"R","namespace":"x","fields":[
    {"name":"n","type":"long"},
    {"name":"inner","type":{"type":"record","name":"In","fields":[{"name":"raw","type":"bytes"},
      {"name":"s","type":"string"}]},"default":{"raw":"\u00ff","s":"\u00ff"}},
    {"name":"again","type":"In","default":{"raw":"\u00e9","s":"a"}},
    {"name":"m","type":{"type":"map","values":"bytes"},"default":{"k":"\u00ff"}}]})";
  StageHarness<avro::AvroEncode> enc({{"subject", std::string("r-value")}},
                                     [&](TestContext& c) { register_text(c, "r-value", schema); });
  enc->start();
  Batch b;
  b.records.emplace_back().value = Struct{StructSchema::make({"n"}), {Value(std::int64_t{5})}};
  REQUIRE(enc.process(b).empty());
  std::string body;
  put_long(body, 5);
  put_long(body, 1), body += '\xff';        // inner.raw: one byte
  put_long(body, 2), body += "\xc3\xbf";    // inner.s: a string, its UTF-8
  put_long(body, 1), body += '\xe9';        // again.raw, through the name In
  put_long(body, 1), body += "a";
  put_long(body, 1), put_long(body, 1), body += "k", put_long(body, 1), body += '\xff', put_long(body, 0);
  REQUIRE(b.records.size() == 1);
  CHECK(std::string(b.records[0].payload) == framed(1, body));
}

TEST_CASE("avro options: a schema file that is missing or not Avro is a validation problem") {
  auto problems = StageHarness<avro::AvroEncode>::problems({{"schema_file", std::string("/nonexistent.avsc")}});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("cannot read Avro schema file /nonexistent.avsc") != std::string::npos);
  const std::string path = "avro_test_bad.avsc";
  { std::ofstream(path) << "{\"type\":\"recrod\"}"; }
  problems = StageHarness<avro::AvroDecode>::problems({{"reader_schema_file", path}});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find(path) != std::string::npos);
  { std::ofstream(path) << "{\"type\": \"record\",\n \"fields\": [1,]}"; }  // where the JSON breaks
  problems = StageHarness<avro::AvroDecode>::problems({{"reader_schema_file", path}});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("(the JSON breaks at line 2, column 15)") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("avro: a recursive record round-trips (its union branch is a link to itself)") {
  const std::string schema = R"({"type":"record","name":"Node","fields":[{"name":"v","type":"int"},
    {"name":"next","type":["null","Node"]},{"name":"kids","type":{"type":"array","items":"Node"}}]})";
  StageHarness<avro::AvroDecode> dec;
  const int id = register_text(dec.context, "node-value", schema);
  std::string body;
  put_long(body, 1);  // v
  put_long(body, 1);  // next: branch Node
  put_long(body, 2);
  put_long(body, 0);  // next.next: null
  put_long(body, 0);  // next.kids: empty
  put_long(body, 1);  // kids: one
  put_long(body, 3);
  put_long(body, 0);
  put_long(body, 0);
  put_long(body, 0);  // end of kids
  Batch b = of({framed(id, body)});
  REQUIRE(dec.process(b).empty());
  CHECK(*b.records[0].value.field("next")->field("v") == Value(std::int64_t{2}));
  StageHarness<avro::AvroEncode> enc({{"subject", std::string("node-value")}},
                                     [&](TestContext& c) { register_text(c, "node-value", schema); });
  enc->start();
  auto rejected = enc.process(b);
  REQUIRE_MESSAGE(rejected.empty(), (rejected.empty() ? "" : rejected[0].reason));
  CHECK(std::string(b.records[0].payload) == framed(1, body));
}

TEST_CASE("avro_encode: nested values of other shapes, and the path of a field that does not fit") {
  const std::string schema = R"({"type":"record","name":"Node","fields":[
    {"name":"next","type":["null","Node"]},{"name":"v","type":"int"},
    {"name":"kids","type":{"type":"array","items":"Node"}},
    {"name":"tags","type":{"type":"map","values":"string"}}]})";
  StageHarness<avro::AvroEncode> enc({{"subject", std::string("node-value")}},
                                     [&](TestContext& c) { register_text(c, "node-value", schema); });
  enc->start();
  auto node = [](std::vector<std::pair<std::string, Value>> fields) {
    std::vector<std::string> names;
    Struct s;
    for (auto& [n, v] : fields) names.push_back(n), s.fields.push_back(std::move(v));
    s.schema = StructSchema::make(std::move(names));
    return Value(std::move(s));
  };
  auto tags = [&](Value v) { return node({{"k", std::move(v)}}); };
  // The child's fields are in another order than its parent's: the parent's v, kids and
  // tags, written after the child, must still be found by name.
  Value child = node({{"tags", tags(Value("c"))}, {"kids", List{}}, {"v", Value(std::int64_t{2})}});
  Batch b;
  b.records.emplace_back().value =
      node({{"v", Value(std::int64_t{1})}, {"kids", List{}}, {"next", std::move(child)}, {"tags", tags(Value("p"))}});
  REQUIRE(enc.process(b).empty());
  StageHarness<avro::AvroDecode> dec({}, [&](TestContext& c) { register_text(c, "node-value", schema); });
  Batch back = of({std::string(b.records[0].payload)});
  REQUIRE(dec.process(back).empty());
  const Value& v = back.records[0].value;
  CHECK(*v.field("v") == Value(std::int64_t{1}));
  CHECK(*v.field("tags")->field("k") == Value("p"));
  CHECK(*v.field("next")->field("v") == Value(std::int64_t{2}));
  CHECK(*v.field("next")->field("tags")->field("k") == Value("c"));

  auto reason = [&](Value value) {
    Batch c;
    c.records.emplace_back().value = std::move(value);
    auto r = enc.process(c);
    return r.size() == 1 ? r[0].reason : std::string("accepted");
  };
  Value bad_kid = node({{"v", Value("two")}, {"kids", List{}}, {"tags", tags(Value("x"))}});
  List kids;
  kids.push_back(node({{"v", Value(std::int64_t{1})}, {"kids", List{}}, {"tags", tags(Value("x"))}}));
  kids.push_back(std::move(bad_kid));
  CHECK(reason(node({{"v", Value(std::int64_t{1})}, {"kids", std::move(kids)}, {"tags", tags(Value("x"))}})).find(
            "field 'kids[1].v' is not an integer") != std::string::npos);
  CHECK(reason(node({{"v", Value(std::int64_t{1})}, {"kids", List{}}, {"tags", tags(Value(std::int64_t{5}))}}))
            .find("field 'tags.k' is not a string") != std::string::npos);
}

// Equal, a NaN equal to a NaN of the same bits (random floats are often NaN), map keys
// compared up to a NUL.
bool same(const Value& a, const Value& b) {
  const double* x = a.as<double>();
  const double* y = b.as<double>();
  if (x && y) return std::memcmp(x, y, sizeof(double)) == 0;
  const List* la = a.as<List>();
  const List* lb = b.as<List>();
  if (la && lb) {
    if (la->size() != lb->size()) return false;
    for (std::size_t i = 0; i < la->size(); ++i)
      if (!same((*la)[i], (*lb)[i])) return false;
    return true;
  }
  const Struct* sa = a.as<Struct>();
  const Struct* sb = b.as<Struct>();
  if (sa && sb) {
    // Avro C keeps map keys as C strings: it cuts a key at a NUL, read_binary does not.
    auto cut = [](std::string n) { return n.substr(0, n.find('\0')); };
    const auto& na = sa->schema->names();
    const auto& nb = sb->schema->names();
    if (na.size() != nb.size() || sa->fields.size() != sb->fields.size()) return false;
    for (std::size_t i = 0; i < na.size(); ++i)
      if (cut(na[i]) != cut(nb[i])) return false;
    for (std::size_t i = 0; i < sa->fields.size(); ++i)
      if (!same(sa->fields[i], sb->fields[i])) return false;
    return true;
  }
  return a == b;
}

// A record of every type (kAllTypes), a map of 20 entries of a union (one key written
// twice), and an int: for comparing with Avro C. Its int is 2^31, out of int's range;
// mixed_body(-5) is valid.
std::string mixed_schema() {
  return R"({"type":"record","name":"D","fields":[
    {"name":"all","type":)" + std::string(kAllTypes) + R"(},
    {"name":"m","type":{"type":"map","values":["null","long",{"type":"array","items":"string"}]}},
    {"name":"i","type":"int"}]})";
}

std::string mixed_body(std::int64_t last = 1LL << 31) {
  std::string all;  // the fields of kAllTypes, as in "every Avro type the schema can hold"
  all.push_back(1);
  put_long(all, -7);
  put_long(all, 1LL << 40);
  const float f = 1.5f;
  all.append(reinterpret_cast<const char*>(&f), 4);
  const double d = -2.25;
  all.append(reinterpret_cast<const char*>(&d), 8);
  put_string(all, std::string("\0\xff", 2));
  put_string(all, "h\xc3\xa9");
  put_long(all, 1);
  all.append("xy");
  put_long(all, -2);
  put_long(all, 2);
  put_long(all, 3);
  put_long(all, -4);
  put_long(all, 0);
  put_long(all, 1);
  put_string(all, "k");
  put_string(all, "v");
  put_long(all, 0);
  put_long(all, 1);
  put_string(all, "u");
  put_long(all, 42);
  std::string good = all;
  put_long(good, 20);  // m: 20 entries, "k3" written twice (the later value wins, first place)
  for (int k = 0; k < 20; ++k) {
    put_string(good, "k" + std::to_string(k == 19 ? 3 : k));
    put_long(good, k % 2 ? 1 : 2);  // branch long, or an array of one string
    if (k % 2) {
      put_long(good, k);
    } else {
      put_long(good, 1);
      put_string(good, "s" + std::to_string(k));
      put_long(good, 0);
    }
  }
  put_long(good, 0);
  put_long(good, last);

  return good;
}

// The decoder reads a value as written in one pass of its own (read_binary); with a reader
// schema Avro C reads it (check_binary first). Given the same schema as both, the two must
// agree on every payload: the same value, or both a rejection.
TEST_CASE("avro_decode: its own reading agrees with Avro C's on every type, valid or mangled") {
  const std::string schema = mixed_schema();
  const std::string path = "avro_test_same_reader.avsc";
  { std::ofstream(path) << schema; }
  StageHarness<avro::AvroDecode> own;
  StageHarness<avro::AvroDecode> avro_c({{"reader_schema_file", path}});
  const int id = register_text(own.context, "d-value", schema);
  REQUIRE(register_text(avro_c.context, "d-value", schema) == id);

  std::string good = mixed_body();
  auto decode = [&](StageHarness<avro::AvroDecode>& h, const std::string& body, Value& out) {
    Batch b = of({framed(id, body)});
    auto rejected = h.process(b);
    if (rejected.size() == 1) return rejected[0].reason;
    out = b.records.at(0).value;
    return std::string();
  };
  Value a, c;
  CHECK(decode(own, good, a).find("out of the 32-bit range") != std::string::npos);
  CHECK(decode(avro_c, good, c).find("out of the 32-bit range") != std::string::npos);
  good = mixed_body(-5);
  REQUIRE(decode(own, good, a).empty());
  REQUIRE(decode(avro_c, good, c).empty());
  CHECK(a == c);
  CHECK(a.field("m")->as<Struct>()->fields.size() == 19);
  CHECK(*a.field("m")->field("k3") == Value(std::int64_t{19}));

  std::mt19937 rng(11);
  int both_kept = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string body = good;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) body[rng() % body.size()] = static_cast<char>(rng());
    if (rng() % 8 == 0) body.resize(rng() % body.size());
    Value x, y;
    const std::string rx = decode(own, body, x);
    const std::string ry = decode(avro_c, body, y);
    CAPTURE(i);
    REQUIRE_MESSAGE(rx.empty() == ry.empty(), "own: " << rx << " | Avro C: " << ry);
    if (rx.empty()) {
      // A key written twice (a flip made k18 another key): read_binary keeps the later
      // value, as Java's HashMap.put; Avro C reads it into the first value in place, which
      // appends an array's items to the first one's. Then only the rest must agree.
      const bool twice = x.field("m")->as<Struct>()->fields.size() < 19 ||
                         y.field("m")->as<Struct>()->fields.size() < 19;
      if (twice) {
        x.as<Struct>()->fields[1] = Value();
        y.as<Struct>()->fields[1] = Value();
      }
      if (!same(x, y)) {
        std::string jx, jy;
        json::append(x, jx);
        json::append(y, jy);
        FAIL("own: " << jx << "\nAvro C: " << jy);
      }
      ++both_kept;
    }
  }
  CHECK(both_kept > 1000);
  std::remove(path.c_str());
}

// Avro C's bytes for a payload: read into its generic value, written back (one block per
// array and map, as avro_encode writes them).
std::string avro_c_rewrite(const std::string& schema_text, const std::string& body) {
  avro::Schema schema = avro::parse_schema(schema_text);
  avro::Iface iface(avro_generic_class_from_schema(schema.get()));
  avro::OwnedValue value(iface.get());
  avro_reader_t reader = avro_reader_memory(body.data(), static_cast<int64_t>(body.size()));
  REQUIRE(avro_value_read(reader, &value.get()) == 0);
  avro_reader_free(reader);
  std::size_t size = 0;
  REQUIRE(avro_value_sizeof(&value.get(), &size) == 0);
  std::string out(size, '\0');
  avro_writer_t writer = avro_writer_memory(out.data(), static_cast<int64_t>(size));
  REQUIRE(avro_value_write(writer, &value.get()) == 0);
  avro_writer_free(writer);
  return out;
}

TEST_CASE("avro_encode: writes Avro C's bytes for every value avro_decode reads") {
  const std::string schema = mixed_schema();
  StageHarness<avro::AvroDecode> dec;
  const int id = register_text(dec.context, "d-value", schema);
  StageHarness<avro::AvroEncode> enc({{"subject", std::string("d-value")}},
                                     [&](TestContext& c) { register_text(c, "d-value", schema); });
  enc->start();
  const std::string good = mixed_body(-5);
  std::mt19937 rng(13);
  int compared = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string body = good;
    if (i > 0)
      for (int k = 1 + static_cast<int>(rng() % 3); k > 0; --k) body[rng() % body.size()] = static_cast<char>(rng());
    Batch b = of({framed(id, body)});
    if (!dec.process(b).empty()) continue;
    const Value& v = b.records[0].value;
    // Where the two may rightly differ, skip: a boolean byte other than 0 and 1 (read as
    // true by both; Avro C writes the byte back, avro_encode a 1), a float NaN (widened to a
    // double and back, its quiet bit is set), a map key written twice or holding a NUL
    // (Avro C's keys are C strings).
    if (body[0] != 0 && body[0] != 1) continue;
    const Value* f = v.field("all")->field("f");
    if (std::isnan(*f->as<double>())) continue;
    const Struct& m = *v.field("m")->as<Struct>();
    if (m.fields.size() < 19) continue;
    bool nul = false;
    for (const auto& name : m.schema->names()) nul |= name.find('\0') != std::string::npos;
    for (const auto& name : v.field("all")->field("m")->as<Struct>()->schema->names())
      nul |= name.find('\0') != std::string::npos;
    if (nul) continue;
    CAPTURE(i);
    auto rejected = enc.process(b);
    REQUIRE_MESSAGE(rejected.empty(), (rejected.empty() ? "" : rejected[0].reason));
    CHECK(std::string(b.records[0].payload) == framed(1, avro_c_rewrite(schema, body)));
    ++compared;
  }
  CHECK(compared > 1000);
}

TEST_CASE("avro_encode: a union gets the branch the value is, and a refusing branch makes way") {
  const std::string schema = R"({"type":"record","name":"U","fields":[
    {"name":"s","type":["bytes","string"]},
    {"name":"fx","type":[{"type":"fixed","name":"F16","size":16},"string"]},
    {"name":"big","type":["int","long"]},
    {"name":"e","type":[{"type":"enum","name":"E","symbols":["A"]},"string"]},
    {"name":"sym","type":[{"type":"enum","name":"E2","symbols":["A"]},"string"]},
    {"name":"d","type":["float","double"]},
    {"name":"n","type":["null","float","double"]},
    {"name":"r","type":[{"type":"record","name":"R1","fields":[{"name":"a","type":"int"}]},
                        {"type":"record","name":"R2","fields":[{"name":"b","type":"string"}]}]}]})";
  StageHarness<avro::AvroEncode> enc({{"subject", std::string("u-value")}},
                                     [&](TestContext& c) { register_text(c, "u-value", schema); });
  enc->start();
  auto names = [](std::vector<std::string> n) { return StructSchema::make(std::move(n)); };
  Batch b;
  b.records.emplace_back().value =
      Struct{names({"s", "fx", "big", "e", "sym", "d", "n", "r"}),
             {Value("hi"), Value("hello"), Value(std::int64_t{1} << 40), Value("zzz"), Value("A"),
              Value(0.1), Value(std::int64_t{16777217}), Value(Struct{names({"b"}), {Value("x")}})}};
  auto rejected = enc.process(b);
  REQUIRE_MESSAGE(rejected.empty(), (rejected.empty() ? "" : rejected[0].reason));
  StageHarness<avro::AvroDecode> dec({}, [&](TestContext& c) { register_text(c, "u-value", schema); });
  Batch back = of({std::string(b.records[0].payload)});
  REQUIRE(dec.process(back).empty());
  const Value& v = back.records[0].value;
  CHECK(*v.field("s") == Value("hi"));  // not bytes
  CHECK(*v.field("fx") == Value("hello"));  // the fixed branch refused 5 bytes
  CHECK(*v.field("big") == Value(std::int64_t{1} << 40));
  CHECK(*v.field("e") == Value("zzz"));
  CHECK(*v.field("sym") == Value("A"));
  CHECK(*v.field("d") == Value(0.1));  // not narrowed to a float
  CHECK(*v.field("n") == Value(16777217.0));  // an integer into the double, not the float first
  CHECK(*v.field("r")->field("b") == Value("x"));  // R1 refused: no a
  const std::string body = std::string(b.records[0].payload).substr(5);
  CHECK(body[0] == 2);  // s: branch 1 (zig-zag)
}

TEST_CASE("avro_encode: a string that is not UTF-8 is refused, naming the field") {
  const std::string schema = R"({"type":"record","name":"S","fields":[{"name":"t","type":"string"},
    {"name":"u","type":["string","bytes"]}]})";
  StageHarness<avro::AvroEncode> enc({{"subject", std::string("s-value")}},
                                     [&](TestContext& c) { register_text(c, "s-value", schema); });
  enc->start();
  auto names = [](std::vector<std::string> n) { return StructSchema::make(std::move(n)); };
  Batch bad;
  bad.records.emplace_back().value = Struct{names({"t", "u"}), {Value(std::string("\xc3(")), Value("fine")}};
  auto rejected = enc.process(bad);
  REQUIRE(rejected.size() == 1);
  CHECK(rejected[0].reason.find("field 't' is not valid UTF-8 text") != std::string::npos);
  Batch b;
  b.records.emplace_back().value = Struct{names({"t", "u"}), {Value("fine"), Value(std::string("\xc3("))}};
  REQUIRE(enc.process(b).empty());
  StageHarness<avro::AvroDecode> dec({}, [&](TestContext& c) { register_text(c, "s-value", schema); });
  Batch back = of({std::string(b.records[0].payload)});
  REQUIRE(dec.process(back).empty());
  CHECK(back.records[0].value.field("u")->is<Bytes>());  // the union's bytes branch took it
}

TEST_CASE("avro: a rejected record keeps its payload; rejections name the schema id") {
  StageHarness<avro::AvroEncode> enc({{"schema_file", kConsumerSchema}, {"subject", std::string("c-value")}});
  enc->start();
  Batch b;
  Record& r = b.records.emplace_back();
  r.payload = std::string(R"({"producer_service_id": 7})");
  r.value = Struct{StructSchema::make({"producer_service_id"}), {Value(std::int64_t{7})}};
  auto rejected = enc.process(b);
  REQUIRE(rejected.size() == 1);
  CHECK(std::string(rejected[0].record.payload) == R"({"producer_service_id": 7})");

  StageHarness<avro::AvroDecode> dec;
  const int id = register_text(dec.context, "s-value", R"("string")");
  std::string bad;
  put_long(bad, 2);
  bad += "\xff\xfe";
  Batch c = of({framed(id, bad)});
  auto refused = dec.process(c);
  REQUIRE(refused.size() == 1);
  CHECK(refused[0].reason.find("schema id " + std::to_string(id) + ": ") != std::string::npos);
  CHECK(refused[0].reason.find("not valid UTF-8 (at byte 3") != std::string::npos);
}

TEST_CASE("avro: a schema that names types registered under other subjects (references)") {
  // As a producer registers them: the named type first, then the schema with a reference
  // to it by full name, subject and version.
  const std::string money =
      R"({"type":"record","name":"Money","namespace":"acme","fields":[)"
      R"({"name":"currency","type":"string"},{"name":"units","type":"long"}]})";
  const std::string payment =
      R"({"type":"record","name":"Payment","namespace":"acme","fields":[)"
      R"({"name":"id","type":"string"},{"name":"amount","type":"acme.Money"}]})";
  const std::string either = R"(["null","acme.Money"])";  // a union schema naming it
  const std::vector<SchemaReference> refs = {{"acme.Money", "acme.Money", 1}};
  int payment_id = 0, either_id = 0;
  StageHarness<avro::AvroDecode> dec({}, [&](TestContext& c) {
    int id = 0;
    REQUIRE(c.registry.register_schema("acme.Money", "AVRO", money, id).is_ok());
    REQUIRE(c.registry.register_schema("pay-value", "AVRO", payment, refs, payment_id).is_ok());
    REQUIRE(c.registry.register_schema("either-value", "AVRO", either, refs, either_id).is_ok());
  });
  std::string body;
  put_string(body, "p1");
  put_string(body, "EUR");
  put_long(body, 5);
  std::string some;
  put_long(some, 1);  // the union's second branch
  put_string(some, "USD");
  put_long(some, 7);
  Batch b = of({framed(payment_id, body), framed(either_id, some)});
  auto rejected = dec.process(b);
  for (const auto& r : rejected) MESSAGE(r.reason);
  REQUIRE(rejected.empty());
  CHECK(*b.records[0].value.field("id") == Value("p1"));
  const Value* amount = b.records[0].value.field("amount");
  REQUIRE(amount);
  CHECK(*amount->field("currency") == Value("EUR"));
  CHECK(*amount->field("units") == Value(std::int64_t{5}));
  CHECK(*b.records[1].value.field("currency") == Value("USD"));

  // The encoder writes with the subject's latest version and its references.
  StageHarness<avro::AvroEncode> enc({{"subject", std::string("pay-value")}}, [&](TestContext& c) {
    int id = 0;
    REQUIRE(c.registry.register_schema("acme.Money", "AVRO", money, id).is_ok());
    REQUIRE(c.registry.register_schema("pay-value", "AVRO", payment, refs, id).is_ok());
  });
  enc->start();
  Batch e;
  e.records.emplace_back().value = b.records[0].value;
  REQUIRE(enc.process(e).empty());
  CHECK(std::string(e.records[0].payload) == framed(2, body));
}

TEST_CASE("avro_decode: a reference the registry lacks rejects the record, naming it") {
  const std::string payment =
      R"({"type":"record","name":"Payment","namespace":"acme","fields":[)"
      R"({"name":"amount","type":"acme.Money"}]})";
  int id = 0;
  StageHarness<avro::AvroDecode> dec({}, [&](TestContext& c) {
    REQUIRE(c.registry.register_schema("pay-value", "AVRO", payment, {{"acme.Money", "money", 3}}, id)
                .is_ok());
  });
  Batch b = of({framed(id, std::string(1, '\0'))});
  auto rejected = dec.process(b);
  REQUIRE(rejected.size() == 1);
  CHECK_MESSAGE(rejected[0].reason.find("its reference acme.Money is registered as subject 'money' "
                                        "version 3, which the registry does not have") != std::string::npos,
                rejected[0].reason);
}
