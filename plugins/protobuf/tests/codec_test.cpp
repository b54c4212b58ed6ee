#include <doctest/doctest.h>
#include <google/protobuf/util/field_comparator.h>
#include <google/protobuf/util/message_differencer.h>

#include <charconv>
#include <cstdint>
#include <limits>
#include <map>
#include <pipehost/status.hpp>
#include <random>

#include "test_support.hpp"
#include "wire_decoder.hpp"
#include "wire_encoder.hpp"

using namespace pipehost;
using namespace pipehost::protobuf;
namespace gp = google::protobuf;

namespace {

// An Everything with every field set, built by protobuf itself.
std::unique_ptr<gp::Message> full_everything() {
  auto m = test::new_message(test::test_files(), "pipehost.test.Everything");
  const gp::Descriptor* d = m->GetDescriptor();
  const gp::Reflection* r = m->GetReflection();
  auto f = [&](const char* name) { return d->FindFieldByName(name); };
  r->SetDouble(m.get(), f("d"), -2.5);
  r->SetFloat(m.get(), f("f"), 1.25f);
  r->SetInt32(m.get(), f("i32"), -42);
  r->SetInt64(m.get(), f("i64"), -(std::int64_t{1} << 40));
  r->SetUInt32(m.get(), f("u32"), 4000000000u);
  r->SetUInt64(m.get(), f("u64"), std::numeric_limits<std::uint64_t>::max());
  r->SetInt32(m.get(), f("s32"), -7);
  r->SetInt64(m.get(), f("s64"), -(std::int64_t{1} << 50));
  r->SetUInt32(m.get(), f("fx32"), 123456789u);
  r->SetUInt64(m.get(), f("fx64"), 1234567890123ull);
  r->SetInt32(m.get(), f("sfx32"), -99);
  r->SetInt64(m.get(), f("sfx64"), -9999999999);
  r->SetBool(m.get(), f("b"), true);
  r->SetString(m.get(), f("s"), "héllo, a string longer than the small-string buffer");
  r->SetString(m.get(), f("raw"), std::string("\0\x01\xff", 3));
  r->SetEnumValue(m.get(), f("color"), -3);
  gp::Message* inner = r->MutableMessage(m.get(), f("inner"));
  inner->GetReflection()->SetString(inner, inner->GetDescriptor()->FindFieldByName("label"), "in");
  gp::Message* child = inner->GetReflection()->MutableMessage(
      inner, inner->GetDescriptor()->FindFieldByName("child"));
  child->GetReflection()->SetInt64(child, child->GetDescriptor()->FindFieldByName("value"), 5);
  for (int v : {1, -2, 300}) r->AddInt32(m.get(), f("packed_ints"), v);
  for (int v : {7, 8}) r->AddInt32(m.get(), f("unpacked_ints"), v);
  for (const char* t : {"a", "", "c"}) r->AddString(m.get(), f("tags"), t);
  for (int i = 0; i < 2; ++i) {
    gp::Message* e = r->AddMessage(m.get(), f("inners"));
    e->GetReflection()->SetInt64(e, e->GetDescriptor()->FindFieldByName("value"), i + 10);
  }
  gp::Message* entry = r->AddMessage(m.get(), f("counts"));
  entry->GetReflection()->SetString(entry, entry->GetDescriptor()->FindFieldByName("key"), "k");
  entry->GetReflection()->SetInt64(entry, entry->GetDescriptor()->FindFieldByName("value"), 3);
  gp::Message* at = r->MutableMessage(m.get(), f("at"));
  at->GetReflection()->SetInt64(at, at->GetDescriptor()->FindFieldByName("seconds"), 1700000000);
  at->GetReflection()->SetInt32(at, at->GetDescriptor()->FindFieldByName("nanos"), 123456000);
  r->SetInt64(m.get(), f("number"), 77);
  r->SetInt32(m.get(), f("maybe"), 0);  // explicit presence: set to its default
  for (double v : {0.5, -1.0}) r->AddDouble(m.get(), f("packed_doubles"), v);
  r->SetInt32(m.get(), f("far"), 9);
  return m;
}

struct Codec {
  std::vector<std::unique_ptr<DecodePlans>> decode_plans;
  EncodePlans encode_plans;
  const DecodePlan& decoder(const std::string& name, std::vector<std::string> projection = {}) {
    decode_plans.push_back(std::make_unique<DecodePlans>(std::move(projection)));
    return decode_plans.back()->plan(test::test_files().find_message(name));
  }
  const EncodePlan& encoder(const std::string& name) {
    return encode_plans.plan(test::test_files().find_message(name));
  }
};

const Value& field(const Value& v, const char* name) {
  const Value* f = v.field(name);
  REQUIRE(f != nullptr);
  return *f;
}

}  // namespace

TEST_CASE("decode: bytes written by protobuf give the right struct") {
  Codec codec;
  const std::string wire = full_everything()->SerializeAsString();
  Value v;
  decode_message(codec.decoder("pipehost.test.Everything"), wire, v);
  CHECK(v.as<Struct>()->schema->names().size() == 28);
  CHECK(v.as<Struct>()->schema->names()[0] == "d");
  CHECK(field(v, "d") == Value(-2.5));
  CHECK(field(v, "f") == Value(1.25));
  CHECK(field(v, "i32") == Value(-42));
  CHECK(field(v, "i64") == Value(-(std::int64_t{1} << 40)));
  CHECK(field(v, "u32") == Value(std::int64_t{4000000000}));
  CHECK(field(v, "u64") == Value(std::string("18446744073709551615")));  // past int64: its decimal text
  CHECK(field(v, "s32") == Value(-7));
  CHECK(field(v, "s64") == Value(-(std::int64_t{1} << 50)));
  CHECK(field(v, "fx32") == Value(123456789));
  CHECK(field(v, "fx64") == Value(std::int64_t{1234567890123}));
  CHECK(field(v, "sfx32") == Value(-99));
  CHECK(field(v, "sfx64") == Value(std::int64_t{-9999999999}));
  CHECK(field(v, "b") == Value(true));
  CHECK(field(v, "s") == Value("héllo, a string longer than the small-string buffer"));
  CHECK(field(v, "raw") == Value(Bytes{std::string("\0\x01\xff", 3)}));
  CHECK(field(v, "color") == Value("ULTRAVIOLET"));
  CHECK(field(field(v, "inner"), "label") == Value("in"));
  CHECK(field(field(field(v, "inner"), "child"), "value") == Value(5));
  CHECK(field(field(field(v, "inner"), "child"), "child").is_null());
  CHECK(field(v, "packed_ints") == Value(List{1, -2, 300}));
  CHECK(field(v, "unpacked_ints") == Value(List{7, 8}));
  CHECK(field(v, "tags") == Value(List{"a", "", "c"}));
  CHECK(field(field(v, "inners").as<List>()->at(1), "value") == Value(11));
  CHECK(field(field(v, "counts").as<List>()->at(0), "key") == Value("k"));
  CHECK(field(v, "at") == Value(Timestamp{1700000000123456}));
  CHECK(field(v, "name").is_null());
  CHECK(field(v, "number") == Value(77));
  CHECK(field(v, "maybe") == Value(0));
  CHECK(field(v, "packed_doubles") == Value(List{0.5, -1.0}));
  CHECK(field(v, "far") == Value(9));
}

TEST_CASE("decode: a float is the number written, as its shortest decimal, not the float widened") {
  Codec codec;
  auto m = test::new_message(test::test_files(), "pipehost.test.Everything");
  for (float written : {0.1f, 1.005f, 2.675f, -0.015f, 3.4028235e38f, 1e-45f}) {
    m->GetReflection()->SetFloat(m.get(), m->GetDescriptor()->FindFieldByName("f"), written);
    Value v;
    decode_message(codec.decoder("pipehost.test.Everything"), m->SerializeAsString(), v);
    char text[32];
    const char* end = std::to_chars(text, text + sizeof text, written).ptr;
    CHECK(field(v, "f") == Value(std::stod(std::string(text, static_cast<std::size_t>(end - text)))));  // 0.1f as 0.1
    CHECK(static_cast<float>(*field(v, "f").as<double>()) == written);  // the same float again
  }
}

TEST_CASE("decode: absent fields get proto3 defaults, messages and oneofs null") {
  Codec codec;
  Value v;
  decode_message(codec.decoder("pipehost.test.Everything"), "", v);
  CHECK(field(v, "d") == Value(0.0));
  CHECK(field(v, "i64") == Value(0));
  CHECK(field(v, "b") == Value(false));
  CHECK(field(v, "s") == Value(""));
  CHECK(field(v, "raw") == Value(Bytes{}));
  CHECK(field(v, "color") == Value("COLOR_UNSPECIFIED"));
  CHECK(field(v, "inner").is_null());
  CHECK(field(v, "at").is_null());
  CHECK(field(v, "tags") == Value(List{}));
  CHECK(field(v, "number").is_null());
  CHECK(field(v, "maybe").is_null());
}

TEST_CASE("decode: a map key repeated on the wire keeps its last value, as protobuf") {
  Codec codec;
  const auto& plan = codec.decoder("pipehost.test.Everything");
  auto message_with = [](const std::vector<std::pair<std::string, std::int64_t>>& counts) {
    auto m = test::new_message(test::test_files(), "pipehost.test.Everything");
    const gp::FieldDescriptor* f = m->GetDescriptor()->FindFieldByName("counts");
    for (const auto& [key, value] : counts) {
      gp::Message* e = m->GetReflection()->AddMessage(m.get(), f);
      e->GetReflection()->SetString(e, e->GetDescriptor()->FindFieldByName("key"), key);
      e->GetReflection()->SetInt64(e, e->GetDescriptor()->FindFieldByName("value"), value);
    }
    return m->SerializeAsString();
  };
  for (int size : {3, 20}) {  // a short map is scanned, a long one sorted
    std::vector<std::pair<std::string, std::int64_t>> first;
    for (int i = 0; i < size; ++i) first.emplace_back("k" + std::to_string(i), i);
    // Two messages merged (concatenated): k1 and the last key come again.
    const std::string wire = message_with(first) + message_with({{"k1", 100}, {"k" + std::to_string(size - 1), 200}});
    Value v;
    decode_message(plan, wire, v);
    std::map<std::string, std::int64_t> decoded;
    const List* entries = field(v, "counts").as<List>();
    REQUIRE(entries);
    for (const auto& e : *entries) decoded[*e.field("key")->as<std::string>()] = *e.field("value")->as<std::int64_t>();
    CHECK(entries->size() == static_cast<std::size_t>(size));  // one entry per key
    CHECK(decoded["k1"] == 100);
    CHECK(decoded["k" + std::to_string(size - 1)] == 200);
    CHECK(decoded["k0"] == 0);
  }
}

TEST_CASE("decode: a singular Timestamp twice merges, and the last oneof member wins, as protobuf") {
  Codec codec;
  const auto& plan = codec.decoder("pipehost.test.Everything");
  auto reference = test::new_message(test::test_files(), "pipehost.test.Everything");
  const gp::Descriptor* d = reference->GetDescriptor();
  const gp::Reflection* r = reference->GetReflection();

  // `at` (23) as {seconds 5} then {nanos 7000}: one Timestamp, 5 s and 7 us.
  const std::string twice("\xba\x01\x02\x08\x05\xba\x01\x03\x10\xd8\x36", 11);
  REQUIRE(reference->ParseFromString(twice));
  const auto& at = r->GetMessage(*reference, d->FindFieldByName("at"));
  CHECK(at.GetReflection()->GetInt64(at, at.GetDescriptor()->FindFieldByName("seconds")) == 5);
  Value v;
  decode_message(plan, twice, v);
  CHECK(field(v, "at") == Value(Timestamp{5000007}));

  // oneof choice: name (24) "x" then number (25) 5, and the other way round.
  const std::string name_then_number("\xc2\x01\x01x\xc8\x01\x05", 7);
  REQUIRE(reference->ParseFromString(name_then_number));
  CHECK_FALSE(r->HasField(*reference, d->FindFieldByName("name")));
  decode_message(plan, name_then_number, v);
  CHECK(field(v, "name").is_null());
  CHECK(field(v, "number") == Value(5));
  const std::string number_then_name("\xc8\x01\x05\xc2\x01\x01x", 7);
  REQUIRE(reference->ParseFromString(number_then_name));
  CHECK_FALSE(r->HasField(*reference, d->FindFieldByName("number")));
  decode_message(plan, number_then_name, v);
  CHECK(field(v, "name") == Value("x"));
  CHECK(field(v, "number").is_null());
}

TEST_CASE("encode: same bytes as protobuf, and protobuf reads them back equal") {
  Codec codec;
  const auto reference = full_everything();
  Value v;
  decode_message(codec.decoder("pipehost.test.Everything"), reference->SerializeAsString(), v);
  std::string out;
  encode_message(codec.encoder("pipehost.test.Everything"), v, out);
  CHECK(out == reference->SerializeAsString());
  auto parsed = test::new_message(test::test_files(), "pipehost.test.Everything");
  REQUIRE(parsed->ParseFromString(out));
  CHECK(gp::util::MessageDifferencer::Equals(*parsed, *reference));
}

TEST_CASE("encode: timestamps, enums by name or number, struct timestamps") {
  Codec codec;
  const EncodePlan& plan = codec.encoder("pipehost.test.Everything");
  const DecodePlan& back = codec.decoder("pipehost.test.Everything");
  for (std::int64_t micros :
       {std::int64_t{-1}, std::int64_t{0}, std::int64_t{1}, std::int64_t{-1500001}}) {
    std::string out;
    encode_message(plan, test::make_struct({{"at", Timestamp{micros}}}), out);
    Value v;
    decode_message(back, out, v);
    CHECK(field(v, "at") == Value(Timestamp{micros}));
  }
  std::string by_name, by_number, by_struct, reference;
  encode_message(plan, test::make_struct({{"color", "GREEN"}}), by_name);
  encode_message(plan, test::make_struct({{"color", 2}}), by_number);
  CHECK(by_name == by_number);
  encode_message(plan,
                 test::make_struct({{"at", test::make_struct({{"seconds", 5}, {"nanos", 1000}})}}),
                 by_struct);
  encode_message(plan, test::make_struct({{"at", Timestamp{5000001}}}), reference);
  CHECK(by_struct == reference);
}

TEST_CASE("encode: a value of the wrong type is rejected naming the field") {
  Codec codec;
  const EncodePlan& plan = codec.encoder("pipehost.test.Everything");
  std::string out;
  auto fails = [&](Value v) {
    out.clear();
    try {
      encode_message(plan, v, out);
    } catch (const InvalidRecord& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(fails(test::make_struct({{"i32", "x"}})) ==
        "cannot encode pipehost.test.Everything: field 'i32': expected an integer, got a string");
  CHECK(fails(test::make_struct({{"i32", std::int64_t{1} << 40}})) ==
        "cannot encode pipehost.test.Everything: field 'i32': value 1099511627776 is out of range "
        "[-2147483648, 2147483647]");
  CHECK(fails(test::make_struct({{"u32", -1}})).find("out of range") != std::string::npos);
  CHECK(fails(test::make_struct({{"inner", test::make_struct({{"value", 1.5}})}})) ==
        "cannot encode pipehost.test.Everything: field 'inner.value': expected an integer, got a "
        "double");
  CHECK(fails(test::make_struct(
            {{"inners", List{test::make_struct({}), test::make_struct({{"label", 5}})}}})) ==
        "cannot encode pipehost.test.Everything: field 'inners[1].label': expected a string, got "
        "an integer");
  CHECK(fails(test::make_struct({{"packed_ints", List{1, "two"}}})) ==
        "cannot encode pipehost.test.Everything: field 'packed_ints[1]': expected an integer, got "
        "a string");
  CHECK(fails(test::make_struct({{"color", "PURPLE"}})) ==
        "cannot encode pipehost.test.Everything: field 'color': 'PURPLE' is not a value of enum "
        "pipehost.test.Color (COLOR_UNSPECIFIED, RED, GREEN, ULTRAVIOLET)");
  CHECK(fails(test::make_struct({{"tags", "not a list"}})) ==
        "cannot encode pipehost.test.Everything: field 'tags': expected a list, got a string");
  CHECK(fails(test::make_struct({{"at", 5}})) ==
        "cannot encode pipehost.test.Everything: field 'at': expected a timestamp or struct, got "
        "an integer");
  CHECK(fails(Value("text")) ==
        "cannot encode pipehost.test.Everything: the record value is a string, not a struct");
  // Absent, null and extra fields are fine; integral doubles are integers.
  CHECK(fails(test::make_struct({{"i32", Value()}, {"no_such_field", 1}, {"i64", 3.0}})) ==
        "no error");
}

TEST_CASE("decode: unknown fields of every wire type are skipped") {
  Codec codec;
  std::string wire = test::bytes({0x72, 0x02, 'h', 'i'});     // s = "hi" (field 14)
  wire += test::bytes({0xb8, 0x3e, 0x96, 0x01});              // field 999 varint 150
  wire += test::bytes({0xb1, 0x3e, 1, 2, 3, 4, 5, 6, 7, 8});  // field 998 fixed64
  wire += test::bytes({0xaa, 0x3e, 0x03, 'a', 'b', 'c'});     // field 997 length-delimited
  wire += test::bytes({0xa5, 0x3e, 1, 2, 3, 4});              // field 996 fixed32
  wire += test::bytes({0x9b, 0x3e, 0x08, 0x01, 0x9c, 0x3e});  // field 995 group {field 1 = 1}
  wire += test::bytes({0x18, 0x05});                          // i32 = 5 (field 3)
  wire += test::bytes({0x1d, 1, 2, 3, 4});  // i32 with the wrong wire type: skipped
  Value v;
  decode_message(codec.decoder("pipehost.test.Everything"), wire, v);
  CHECK(field(v, "s") == Value("hi"));
  CHECK(field(v, "i32") == Value(5));
}

TEST_CASE("decode: packed and unpacked repeated scalars are both accepted") {
  Codec codec;
  // packed_ints (18) unpacked on the wire, unpacked_ints (19) packed, and both mixed.
  const std::string wire =
      test::bytes({0x90, 0x01, 0x01, 0x90, 0x01, 0x02,                         // 18: 1, 2
                   0x9a, 0x01, 0x02, 0x03, 0x04,                               // 19: [3, 4]
                   0x92, 0x01, 0x01, 0x05,                                     // 18: [5]
                   0xda, 0x01, 0x08, 0,    0,    0,    0, 0, 0, 0xf0, 0x3f});  // 27: [1.0]
  Value v;
  decode_message(codec.decoder("pipehost.test.Everything"), wire, v);
  CHECK(field(v, "packed_ints") == Value(List{1, 2, 5}));
  CHECK(field(v, "unpacked_ints") == Value(List{3, 4}));
  CHECK(field(v, "packed_doubles") == Value(List{1.0}));
  std::string out;  // re-encoded as the schema says: 18 packed, 19 not
  encode_message(codec.encoder("pipehost.test.Everything"),
                 test::make_struct({{"packed_ints", List{1, 2}}, {"unpacked_ints", List{3}}}), out);
  CHECK(out == test::bytes({0x92, 0x01, 0x02, 0x01, 0x02, 0x98, 0x01, 0x03}));
}

TEST_CASE("decode: projection keeps only the named top-level fields") {
  Codec codec;
  const DecodePlan& plan = codec.decoder("pipehost.test.Everything", {"s", "d"});
  CHECK(plan.schema->names() == std::vector<std::string>{"d", "s"});  // declaration order
  Value v;
  decode_message(plan, full_everything()->SerializeAsString(), v);
  CHECK(v.as<Struct>()->fields.size() == 2);
  CHECK(field(v, "d") == Value(-2.5));
  CHECK_THROWS_WITH_AS(
      codec.decoder("pipehost.test.Everything", {"s", "nope"}),
      doctest::Contains("option fields names 'nope', which message pipehost.test.Everything "
                        "does not have; its fields: d, f, i32"),
      std::invalid_argument);
}

TEST_CASE("decode: truncated and garbage input is rejected, never crashes") {
  Codec codec;
  const DecodePlan& plan = codec.decoder("pipehost.test.Everything");
  const std::string wire = full_everything()->SerializeAsString();
  int rejected = 0;
  for (std::size_t n = 0; n < wire.size(); ++n) {
    Value v;
    try {
      decode_message(plan, std::string_view(wire).substr(0, n), v);
    } catch (const InvalidRecord&) {
      ++rejected;
    }
  }
  CHECK(rejected > static_cast<int>(wire.size()) / 2);
  CHECK_THROWS_WITH_AS(
      decode_message(plan, test::bytes({0x72, 0x05, 'a'}), *std::make_unique<Value>()),
      "malformed protobuf pipehost.test.Everything: length runs past the end in field 's' at byte "
      "2",
      InvalidRecord);
  CHECK_THROWS_WITH_AS(decode_message(plan, test::bytes({0x0f}), *std::make_unique<Value>()),
                       doctest::Contains("invalid wire type"), InvalidRecord);
  // Differential: whatever protobuf's own parser accepts, the wire decoder accepts too and
  // reads the same fields (compared by encoding the value back and parsing it).
  gp::LogSilencer quiet;  // protobuf logs each invalid UTF-8 string it refuses
  std::mt19937 random(42);
  int agreed = 0, lenient = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string garbage = wire;
    for (int k = 0; k < 3; ++k) garbage[random() % garbage.size()] = static_cast<char>(random());
    auto reference = test::new_message(test::test_files(), "pipehost.test.Everything");
    const bool protobuf_accepts = reference->ParseFromString(garbage);
    Value v;
    bool accepted = true;
    std::string why;
    try {
      decode_message(plan, garbage, v);
    } catch (const InvalidRecord& e) {
      accepted = false;
      why = e.what();
    }
    if (!protobuf_accepts) {
      lenient += accepted;  // 10-byte varints whose last byte overflows 64 bits
      continue;
    }
    // The one rejection protobuf's parser does not make: a Timestamp outside its own
    // documented range (years 1-9999), which would wrap in microseconds.
    if (!accepted && why.find("timestamp outside years 1-9999") != std::string::npos) continue;
    INFO("input " << i << ": " << why);
    REQUIRE(accepted);
    std::string again;
    try {
      encode_message(codec.encoder("pipehost.test.Everything"), v, again);
    } catch (const InvalidRecord&) {
      continue;  // e.g. an enum number the schema does not name, kept as text
    }
    auto reread = test::new_message(test::test_files(), "pipehost.test.Everything");
    REQUIRE(reread->ParseFromString(again));
    reference->DiscardUnknownFields();
    // Timestamps are kept to the microsecond: compare the rest.
    const gp::FieldDescriptor* at = reference->GetDescriptor()->FindFieldByName("at");
    reference->GetReflection()->ClearField(reference.get(), at);
    reread->GetReflection()->ClearField(reread.get(), at);
    gp::util::MessageDifferencer differencer;
    gp::util::DefaultFieldComparator comparator;
    comparator.set_treat_nan_as_equal(true);
    differencer.set_field_comparator(&comparator);
    std::string differences;
    differencer.ReportDifferencesToString(&differences);
    INFO(differences);
    CHECK(differencer.Compare(*reread, *reference));
    ++agreed;
  }
  MESSAGE(agreed << " mutated inputs decoded like protobuf; " << lenient
                 << " accepted that protobuf refuses");
  CHECK(agreed > 1000);
  CHECK(lenient < 20);  // invalid UTF-8 in proto3 strings is refused like protobuf does
}

TEST_CASE("decode: many small packed chunks decode in linear time" * doctest::timeout(20)) {
  // 200k chunks of one packed int each (field 18): reserving exactly size + n per chunk
  // made this quadratic (minutes); amortised growth takes milliseconds.
  Codec codec;
  const DecodePlan& plan = codec.decoder("pipehost.test.Everything");
  std::string wire;
  constexpr int kChunks = 200000;
  for (int i = 0; i < kChunks; ++i) wire += test::bytes({0x92, 0x01, 0x01, 0x07});
  Value v;
  decode_message(plan, wire, v);
  const List* ints = field(v, "packed_ints").as<List>();
  REQUIRE(ints != nullptr);
  CHECK(ints->size() == kChunks);
  CHECK(ints->back() == Value(7));
}

TEST_CASE("decode: records over the budget are rejected with the limit named") {
  Codec codec;
  const DecodePlan& plan = codec.decoder("pipehost.test.Everything");
  std::string wire;
  for (int i = 0; i < 100; ++i) wire += test::bytes({0x92, 0x01, 0x01, 0x07});
  Value v;
  CHECK_THROWS_WITH_AS(decode_message(plan, wire, v, DecodeLimits{1u << 20, 99}),
                       doctest::Contains("more list elements and message fields than max_elements"),
                       InvalidRecord);
  CHECK_NOTHROW(decode_message(plan, wire, v, DecodeLimits{1u << 20, 100}));
  CHECK_THROWS_WITH_AS(decode_message(plan, wire, v, DecodeLimits{399, 1000}),
                       doctest::Contains("larger than max_record_bytes (399)"), InvalidRecord);
  // Nested messages count too: 200 `inners` with a budget of 100.
  std::string many;
  for (int i = 0; i < 200; ++i) many += test::bytes({0xaa, 0x01, 0x00});
  CHECK_THROWS_WITH_AS(decode_message(plan, many, v, DecodeLimits{1u << 20, 100}),
                       doctest::Contains("max_elements"), InvalidRecord);
  // A message costs its fields, empty on the wire or not: each empty Inner (3 fields) is an
  // element of `inners` plus a struct of 3 fields, 5 in all (it cost 2: 1 MB of empty
  // messages of 50 fields decoded to ~1 GB).
  CHECK_THROWS_WITH_AS(decode_message(plan, many, v, DecodeLimits{1u << 20, 999}),
                       doctest::Contains("max_elements"), InvalidRecord);
  CHECK_NOTHROW(decode_message(plan, many, v, DecodeLimits{1u << 20, 1000}));
  // And nesting stops at 100 levels (Inner.child is recursive).
  auto varint = [](std::size_t n) {
    std::string out;
    for (; n >= 0x80; n >>= 7) out += static_cast<char>((n & 0x7f) | 0x80);
    return out + static_cast<char>(n);
  };
  std::string deep;
  for (int i = 0; i < 150; ++i) deep = "\x1a" + varint(deep.size()) + deep;
  deep = test::bytes({0x8a, 0x01}) + varint(deep.size()) + deep;
  CHECK_THROWS_WITH_AS(decode_message(plan, deep, v), doctest::Contains("nested too deeply"),
                       InvalidRecord);
}

TEST_CASE("decode: a reused value is reset, not merged") {
  Codec codec;
  const DecodePlan& plan = codec.decoder("pipehost.test.Everything");
  Value v;
  decode_message(plan, full_everything()->SerializeAsString(), v);
  decode_message(plan, test::bytes({0x18, 0x05}), v);
  CHECK(field(v, "i32") == Value(5));
  CHECK(field(v, "s") == Value(""));
  CHECK(field(v, "tags") == Value(List{}));
  CHECK(field(v, "inner").is_null());
}

TEST_CASE("decode: a struct of another shape (reused storage) is overwritten whole") {
  // Records from Batch::add hand the decoder an earlier record's struct, of any shape.
  Codec codec;
  const DecodePlan& plan = codec.decoder("pipehost.test.Everything");
  const std::string bytes = full_everything()->SerializeAsString();
  Value fresh;
  decode_message(plan, bytes, fresh);
  Value reused = Struct{StructSchema::make({"a", "s", "b"}),
                        {Value(std::string(64, 'x')), Value(List{Value(1)}), Value(true)}};
  decode_message(plan, bytes, reused);
  CHECK(reused == fresh);
  // Half decoded into reused storage is not left behind by a malformed record.
  CHECK_THROWS_AS(decode_message(plan, bytes.substr(0, bytes.size() - 1), reused), InvalidRecord);
  CHECK(reused.is_null());
}

TEST_CASE("decode: fields a record leaves out get their defaults in reused storage") {
  // The same schema's struct from a full record: a record that sets fewer fields (proto3
  // leaves zeros out), repeats, nests differently or carries a field with a wire type it
  // cannot have must decode exactly as into a fresh value.
  Codec codec;
  const DecodePlan& plan = codec.decoder("pipehost.test.Everything");
  auto sparse = test::new_message(test::test_files(), "pipehost.test.Everything");
  const gp::Descriptor* d = sparse->GetDescriptor();
  const gp::Reflection* r = sparse->GetReflection();
  r->SetInt32(sparse.get(), d->FindFieldByName("i32"), 9);
  r->AddInt32(sparse.get(), d->FindFieldByName("packed_ints"), 4);
  r->AddString(sparse.get(), d->FindFieldByName("tags"), "only");
  gp::Message* inner = r->MutableMessage(sparse.get(), d->FindFieldByName("inner"));
  inner->GetReflection()->SetInt64(inner, inner->GetDescriptor()->FindFieldByName("value"), 1);
  std::string mismatched = sparse->SerializeAsString();
  mismatched += std::string("\x72\x01\x41", 3);              // s = "A"
  mismatched += std::string("\x68\x05", 2);                  // b = true
  mismatched += std::string("\x0d\x00\x00\x00\x00", 5);  // d as a fixed32: skipped, d stays 0
  for (const std::string& bytes : {sparse->SerializeAsString(), std::string(), mismatched}) {
    Value fresh;
    decode_message(plan, bytes, fresh);
    Value reused;
    decode_message(plan, full_everything()->SerializeAsString(), reused);
    decode_message(plan, bytes, reused);
    CHECK(reused == fresh);
  }
}

TEST_CASE("plans: a message that cannot be planned leaves no plan pointing at it") {
  // M -> N -> M, and M has a proto2 group: building M fails after N was built pointing at
  // M's half-built plan. N must not stay cached (it was used after M's plan was freed).
  auto files = SchemaFiles::from_registry(
      "syntax = \"proto2\";\n"
      "message M { optional N n = 1; optional group G = 2 {} }\n"
      "message N { optional M m = 1; }\n",
      1, nullptr);
  DecodePlans plans;
  CHECK_THROWS_AS(plans.plan(files->find_message("M")), std::runtime_error);
  CHECK_THROWS_AS(plans.plan(files->find_message("N")), std::runtime_error);
}

TEST_CASE("decode: a proto2 field not on the wire is null unless it declares a default; a missing required one is refused") {
  auto files = SchemaFiles::from_registry(
      "syntax = \"proto2\";\n"
      "message P { optional int32 a = 1; optional string s = 2; repeated int32 r = 3;\n"
      "            map<string, int32> m = 4; optional int32 d = 5 [default = 5];\n"
      "            optional uint64 big = 6 [default = 18446744073709551615]; }\n"
      "message R { required int64 id = 1; optional string note = 2; }\n",
      1, nullptr);
  DecodePlans plans;
  const DecodePlan& plan = plans.plan(files->find_message("P"));
  Value v;
  decode_message(plan, std::string(), v);
  CHECK(field(v, "a").is_null());
  CHECK(field(v, "s").is_null());
  CHECK(field(v, "r") == Value(List{}));
  CHECK(field(v, "d") == Value(std::int64_t{5}));  // what the schema says absent means
  CHECK(field(v, "big") == Value(std::string("18446744073709551615")));
  decode_message(plan, test::bytes({0x08, 0x07, 0x12, 0x00}), v);  // a = 7, s = ""
  CHECK(field(v, "a") == Value(std::int64_t{7}));
  CHECK(field(v, "s") == Value(std::string()));
  // A map entry whose value (or key) is left out holds the default, as protobuf reads it;
  // entries with the same key, one of them absent, are one entry.
  decode_message(plan, test::bytes({0x22, 0x03, 0x0a, 0x01, 'x', 0x22, 0x02, 0x10, 0x03, 0x22, 0x00}), v);
  const List* entries = field(v, "m").as<List>();
  REQUIRE(entries != nullptr);
  REQUIRE(entries->size() == 2);
  CHECK(field((*entries)[0], "key") == Value(std::string("x")));
  CHECK(field((*entries)[0], "value") == Value(std::int64_t{0}));
  CHECK(field((*entries)[1], "key") == Value(std::string()));
  CHECK(field((*entries)[1], "value") == Value(std::int64_t{0}));
  decode_message(plan, std::string(), v);  // a reused struct is cleared again
  CHECK(field(v, "a").is_null());
  // A message without a required field is refused, as protobuf's parser refuses it.
  const DecodePlan& required = plans.plan(files->find_message("R"));
  decode_message(required, test::bytes({0x08, 0x00}), v);  // id = 0
  CHECK(field(v, "id") == Value(std::int64_t{0}));
  CHECK_THROWS_WITH_AS(decode_message(required, test::bytes({0x12, 0x01, 'n'}), v),
                       doctest::Contains("has no value for its required field 'id'"), InvalidRecord);
}

// protobuf's parsers (C++ ParseFromString, Java parseFrom) refuse a message without a
// proto2 `required` field: the encoder wrote one, which no reader could take.
TEST_CASE("encode: a proto2 required field without a value is refused, naming it") {
  Codec codec;
  const EncodePlan& plan = codec.encoder("pipehost.legacy.Account");
  std::string out;
  CHECK_THROWS_WITH_AS(encode_message(plan, test::make_struct({{"level", 3}}), out),
                       doctest::Contains("field 'id': no value, but it is required (proto2)"), InvalidRecord);
  out.clear();
  CHECK_THROWS_AS(encode_message(plan, test::make_struct({{"id", Value()}, {"level", 3}}), out), InvalidRecord);
  out.clear();
  encode_message(plan, test::make_struct({{"id", "a1"}}), out);
  auto parsed = test::new_message(test::test_files(), "pipehost.legacy.Account");
  REQUIRE(parsed->ParseFromString(out));
}

TEST_CASE("decode: a field whose type comes from an import found nowhere is refused, not emptied") {
  auto files = SchemaFiles::from_registry(
      "syntax = \"proto3\"; import \"other/thing.proto\";\n"
      "message A { other.Thing t = 1; int32 n = 2; }\n",
      1, nullptr);
  REQUIRE(files->unresolved_imports() == std::vector<std::string>{"other/thing.proto"});
  DecodePlans all;
  CHECK_THROWS_WITH_AS(all.plan(files->find_message("A")),
                       doctest::Contains("field A.t has type other.Thing from an import found neither"),
                       std::runtime_error);
  DecodePlans projected({"n"});  // the sink needs only n: nothing of other.Thing is read
  CHECK(projected.plan(files->find_message("A")).schema->names() == std::vector<std::string>{"n"});
}

// A message declaring map_entry that no map field uses is not checked by protobuf to hold
// a key and a value; its map_key() then CHECK-failed, which aborts the process (found by
// the proto_schema fuzzer; a record's message index can name such a message).
TEST_CASE("plans: a message declaring map_entry without its two fields is planned, not a crash") {
  auto files = SchemaFiles::from_registry(
      "syntax = \"proto2\";\n"
      "message E { option map_entry = true; optional string value = 2; }\n",
      1, nullptr);
  DecodePlans plans;
  const DecodePlan& plan = plans.plan(files->find_message("E"));
  Value v;
  decode_message(plan, std::string("\x12\x01v", 3), v);  // value: "v"
  CHECK(field(v, "value") == Value("v"));
  EncodePlans encoders;
  CHECK_NOTHROW(encoders.plan(files->find_message("E")));
}

// Plans are built for every type a message reaches: a registered chain of 20,000 message
// types overflowed the stack and killed the process.
TEST_CASE("decode: a schema whose message types nest past 100 is refused, not a crash") {
  std::string text = "syntax = \"proto3\";\n";
  for (int i = 0; i < 20000; ++i) text += "message M" + std::to_string(i) + " { M" + std::to_string(i + 1) + " f = 1; }\n";
  text += "message M20000 { int32 x = 1; }\n";
  auto files = SchemaFiles::from_registry(text, 1, nullptr);
  DecodePlans all;
  CHECK_THROWS_WITH_AS(all.plan(files->find_message("M0")), doctest::Contains("more than 100 nested message types"),
                       std::runtime_error);
  CHECK(all.plan(files->find_message("M19950")).schema->names() == std::vector<std::string>{"f"});  // 50 deep
}

// With `fields` keeping one member of a oneof, a later member on the wire that the
// projection leaves out still unsets it, as protobuf's parser has it (it stayed set).
TEST_CASE("decode: a projected oneof member is cleared by a later member the projection leaves out") {
  auto files = SchemaFiles::from_registry(
      "syntax = \"proto3\";\nmessage O { oneof o { int32 a = 1; int32 b = 2; } int32 n = 3; }\n", 1, nullptr);
  DecodePlans projected({"a", "n"});
  const DecodePlan& plan = projected.plan(files->find_message("O"));
  Value v;
  decode_message(plan, std::string("\x08\x01\x10\x02\x18\x03", 6), v);  // a = 1, b = 2, n = 3
  CHECK(field(v, "a").is_null());
  CHECK(field(v, "n") == Value(3));
  decode_message(plan, std::string("\x10\x02\x08\x01", 4), v);  // b = 2, a = 1
  CHECK(field(v, "a") == Value(1));
}

TEST_CASE("decode: a Timestamp outside years 1-9999 is rejected, not wrapped") {
  Codec codec;
  const DecodePlan& plan = codec.decoder("pipehost.test.Everything");
  auto at = [](std::int64_t seconds, std::int64_t nanos) {  // field 23: {1: seconds, 2: nanos}
    auto varint = [](std::uint64_t v) {
      std::string out;
      for (; v >= 0x80; v >>= 7) out += static_cast<char>((v & 0x7f) | 0x80);
      return out + static_cast<char>(v);
    };
    std::string body = "\x08" + varint(static_cast<std::uint64_t>(seconds)) + "\x10" +
                       varint(static_cast<std::uint64_t>(nanos));
    return test::bytes({0xba, 0x01}) + varint(body.size()) + body;
  };
  Value v;
  decode_message(plan, at(253402300799, 999999999), v);  // 9999-12-31T23:59:59.999999
  CHECK(field(v, "at") == Value(Timestamp{253402300799999999}));
  decode_message(plan, at(-62135596800, 0), v);  // 0001-01-01
  CHECK(field(v, "at") == Value(Timestamp{-62135596800000000}));
  for (auto [seconds, nanos] : {std::pair<std::int64_t, std::int64_t>{253402300800, 0}, {-62135596801, 0},
                                {std::int64_t{1} << 62, 0}, {0, -1}, {0, 1000000000}})
    CHECK_THROWS_WITH_AS(decode_message(plan, at(seconds, nanos), v), doctest::Contains("years 1-9999"),
                         InvalidRecord);
}

TEST_CASE("encode: a nested struct of another shape leaves its parent's later fields in place") {
  // JSON gives each object its own field order; the plan's cached field slots once
  // belonged to whichever struct was encoded last, so the parent's name and size were
  // read at the child's slots after the child was written.
  Codec codec;
  Value child = test::make_struct({{"size", Value(std::int64_t{2})}, {"name", Value("child")}});
  Value parent = test::make_struct(
      {{"first", std::move(child)}, {"size", Value(std::int64_t{1})}, {"name", Value("parent")}});
  std::string out;
  encode_message(codec.encoder("pipehost.test.Node"), parent, out);
  auto parsed = test::new_message(test::test_files(), "pipehost.test.Node");
  REQUIRE(parsed->ParseFromString(out));
  CHECK(parsed->ShortDebugString() == R"(first { name: "child" size: 2 } name: "parent" size: 1)");
}

TEST_CASE("decode: a nested map merged from many occurrences decodes in linear time" * doctest::timeout(20)) {
  // Holder.counted (field 1) 100k times, each with one tally entry: protobuf merges them
  // into one map. Deduplicating the whole map at each occurrence was quadratic (minutes).
  Codec codec;
  const DecodePlan& plan = codec.decoder("pipehost.test.Holder");
  auto occurrence = [](const std::string& key, std::uint8_t value) {
    const std::string entry = test::bytes({0x0a, static_cast<std::uint8_t>(key.size())}) + key +
                              test::bytes({0x10, value});
    const std::string counted = test::bytes({0x0a, static_cast<std::uint8_t>(entry.size())}) + entry;
    return test::bytes({0x0a, static_cast<std::uint8_t>(counted.size())}) + counted;
  };
  constexpr int kTimes = 100000;
  std::string wire;
  for (int i = 0; i < kTimes; ++i) wire += occurrence("k" + std::to_string(i), 1);
  wire += occurrence("k5", 9);  // a key again: the last value wins
  auto reference = test::new_message(test::test_files(), "pipehost.test.Holder");
  REQUIRE(reference->ParseFromString(wire));  // valid protobuf
  Value v;
  decode_message(plan, wire, v);
  const List* tally = field(field(v, "counted"), "tally").as<List>();
  REQUIRE(tally != nullptr);
  CHECK(tally->size() == kTimes);
  std::int64_t k5 = 0;
  for (const auto& e : *tally)
    if (*e.field("key")->as<std::string>() == "k5") k5 = *e.field("value")->as<std::int64_t>();
  CHECK(k5 == 9);
  // Written back, the map has each key once (protobuf's reflection of a parsed dynamic
  // message lists the merged entries as they came, so it is no reference here).
  std::string again;
  encode_message(codec.encoder("pipehost.test.Holder"), v, again);
  Value back;
  decode_message(plan, again, back);
  CHECK(back == v);
  CHECK(again.size() < wire.size());
}

TEST_CASE("decode: a oneof member with a wire type it cannot have leaves the member set before") {
  Codec codec;
  const auto& plan = codec.decoder("pipehost.test.Everything");
  // number (25) = 5, then field 24 (name, a string) as a varint: protobuf keeps number and
  // treats the second as an unknown field.
  const std::string wire("\xc8\x01\x05\xc0\x01\x01", 6);
  auto reference = test::new_message(test::test_files(), "pipehost.test.Everything");
  REQUIRE(reference->ParseFromString(wire));
  REQUIRE(reference->GetReflection()->GetInt64(*reference, reference->GetDescriptor()->FindFieldByName("number")) == 5);
  Value v;
  decode_message(plan, wire, v);
  CHECK(field(v, "number") == Value(5));
  CHECK(field(v, "name").is_null());
}

TEST_CASE("decode: packed varints are charged one element per value, not per byte") {
  // 500k negative int32s (10 bytes each, 5 MB) are 500k elements: refused as 5M before.
  Codec codec;
  const DecodePlan& plan = codec.decoder("pipehost.test.Everything");
  constexpr std::size_t kValues = 500000;
  std::string payload;
  for (std::size_t i = 0; i < kValues; ++i) payload += test::bytes({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01});
  std::string wire = test::bytes({0x92, 0x01});  // field 18, length-delimited
  std::size_t n = payload.size();
  for (; n >= 0x80; n >>= 7) wire.push_back(static_cast<char>((n & 0x7f) | 0x80));
  wire.push_back(static_cast<char>(n));
  wire += payload;
  auto reference = test::new_message(test::test_files(), "pipehost.test.Everything");
  REQUIRE(reference->ParseFromString(wire));
  Value v;
  decode_message(plan, wire, v);
  const List* ints = field(v, "packed_ints").as<List>();
  REQUIRE(ints != nullptr);
  CHECK(ints->size() == kValues);
  CHECK(ints->front() == Value(-1));
  CHECK_THROWS_AS(decode_message(plan, wire, v, DecodeLimits{16u << 20, kValues - 1}), InvalidRecord);
}

TEST_CASE("encode: map entries keep default keys and values, as protobuf writes them") {
  Codec codec;
  auto reference = test::new_message(test::test_files(), "pipehost.test.Everything");
  const gp::FieldDescriptor* counts = reference->GetDescriptor()->FindFieldByName("counts");
  gp::Message* e = reference->GetReflection()->AddMessage(reference.get(), counts);
  e->GetReflection()->SetString(e, e->GetDescriptor()->FindFieldByName("key"), "");
  e->GetReflection()->SetInt64(e, e->GetDescriptor()->FindFieldByName("value"), 0);
  Value v;
  decode_message(codec.decoder("pipehost.test.Everything"), reference->SerializeAsString(), v);
  std::string out;
  encode_message(codec.encoder("pipehost.test.Everything"), v, out);
  CHECK(out == reference->SerializeAsString());
  CHECK(out == test::bytes({0xb2, 0x01, 0x04, 0x0a, 0x00, 0x10, 0x00}));
}

TEST_CASE("encode: a proto3 string that is not UTF-8 is refused, naming the field") {
  Codec codec;
  const EncodePlan& plan = codec.encoder("pipehost.test.Everything");
  std::string out;
  CHECK_THROWS_WITH_AS(encode_message(plan, test::make_struct({{"s", Bytes{std::string("\xff\xfe", 2)}}}), out),
                       doctest::Contains("field 's': the string is not valid UTF-8"), InvalidRecord);
  CHECK_NOTHROW(encode_message(plan, test::make_struct({{"raw", Bytes{std::string("\xff\xfe", 2)}}}), out));
}
