#include <doctest/doctest.h>
#include <google/protobuf/descriptor.pb.h>
#include <toml++/toml.h>

#include <pipehost/testing.hpp>

#include "protobuf_decode.hpp"
#include "protobuf_plugin.hpp"
#include "framing.hpp"
#include "test_support.hpp"

using namespace pipehost;
using namespace pipehost::protobuf;
namespace gp = google::protobuf;

namespace {

const PluginSpec& spec() {
  static const PluginSpec s = plugin_spec();
  return s;
}
const ComponentSpec& component(const std::string& name) {
  for (const auto& c : spec().components)
    if (c.name == name) return c;
  FAIL("no component " << name);
  throw 0;
}

struct Harness {
  testing::TestContext context;
  Harness() { context.data_directory = PIPEHOST_TEST_DATA_DIR; }

  std::unique_ptr<TransformStage> make(const std::string& name,
                                       std::map<std::string, OptionValue> given,
                                       std::string* error_out = nullptr) {
    std::string error;
    auto stage = component(name).make_transform(
        testing::options_for(component(name).options, given), context, error);
    if (error_out) *error_out = error;
    if (stage) REQUIRE(stage->start().is_ok());
    return stage;
  }
  int register_text(const std::string& text, const std::string& type = "PROTOBUF") {
    int id = 0;
    REQUIRE(context.registry.register_schema("s-value", type, text, id).is_ok());
    return id;
  }
};

Batch batch_of(std::vector<Value> values) {
  Batch b;
  for (auto& v : values) b.records.emplace_back().value = std::move(v);
  return b;
}

Batch payloads(std::vector<std::string> wires) {
  Batch b;
  for (auto& w : wires) b.records.emplace_back().payload = std::move(w);
  return b;
}

std::string frame(int id, const std::string& body, const MessagePath& path = MessagePath()) {
  std::string out;
  write_frame(out, id, path);
  return out + body;
}

}  // namespace

TEST_CASE("plugin: declares protobuf_encode and protobuf_decode with examples") {
  CHECK(spec().name == "protobuf");
  REQUIRE(spec().components.size() == 2);
  for (const auto& c : spec().components) {
    CAPTURE(c.name);
    CHECK(c.kind == pipehost::Kind::transform);
    const toml::table doc = toml::parse(c.example);
    const toml::table& stage = *doc.at_path("pipelines")
                                    .as_table()
                                    ->begin()
                                    ->second.as_table()
                                    ->at_path("transforms")
                                    .as_array()
                                    ->get(0)
                                    ->as_table();
    CHECK(stage["plugin"].value_or(std::string()) == c.name);
    for (const auto& [key, value] : stage) {
      if (key.str() == "plugin") continue;
      bool declared = false;
      for (const auto& o : c.options) declared = declared || o.name == key.str();
      CHECK_MESSAGE(declared, "example sets undeclared option " << key.str());
    }
    for (const auto& o : c.options)
      if (o.required)
        CHECK_MESSAGE(stage.contains(o.name), "example lacks required option " << o.name);
  }
}

TEST_CASE("plugin: a Transaction encoded then decoded equals the input") {
  Harness h;
  auto encode =
      h.make("protobuf_encode", {{"message", "Transaction"}, {"topic", "jagoTransactions"}});
  auto decode = h.make("protobuf_decode", {});
  REQUIRE(encode);
  REQUIRE(decode);
  CHECK(h.context.registry.subjects().at("jagoTransactions-value") == std::vector<int>{1});

  std::vector<Value> inputs;
  for (int i = 0; i < 100; ++i)
    inputs.push_back(test::transaction("tx-" + std::to_string(i), "ACC" + std::to_string(i % 20),
                                       i * 1.25 - 30, 1700000000000000 + i * 1000003));
  Batch batch = batch_of(inputs);
  REQUIRE(encode->process(batch).is_ok());
  CHECK(batch.rejections.empty());
  CHECK(batch.records[0].payload.view().substr(0, 6) == test::bytes({0, 0, 0, 0, 1, 0}));
  for (auto& r : batch.records) r.value = Value();
  REQUIRE(decode->process(batch).is_ok());
  CHECK(batch.rejections.empty());
  for (std::size_t i = 0; i < inputs.size(); ++i) CHECK(batch.records[i].value == inputs[i]);
}

TEST_CASE("plugin: bytes written by protobuf decode into the right struct") {
  Harness h;
  const gp::FileDescriptor& file =
      *test::project_files().pool().FindFileByName("transactions.proto");
  const int id = h.register_text(file.DebugString());
  auto m = test::new_message(test::project_files(), "Transaction");
  const gp::Reflection* r = m->GetReflection();
  const gp::Descriptor* d = m->GetDescriptor();
  r->SetString(m.get(), d->FindFieldByName("transaction_id"), "t1");
  r->SetString(m.get(), d->FindFieldByName("account_number"), "ACC7");
  r->SetDouble(m.get(), d->FindFieldByName("amount"), 99.5);
  gp::Message* at = r->MutableMessage(m.get(), d->FindFieldByName("transaction_datetime"));
  at->GetReflection()->SetInt64(at, at->GetDescriptor()->FindFieldByName("seconds"), 1);
  at->GetReflection()->SetInt32(at, at->GetDescriptor()->FindFieldByName("nanos"), 2000);

  auto decode = h.make("protobuf_decode", {});
  Batch batch = payloads({frame(id, m->SerializeAsString())});
  REQUIRE(decode->process(batch).is_ok());
  CHECK(batch.rejections.empty());
  CHECK(batch.records[0].value == test::make_struct({{"transaction_id", "t1"},
                                                     {"account_number", "ACC7"},
                                                     {"transaction_reference", ""},
                                                     {"transaction_datetime", Timestamp{1000002}},
                                                     {"amount", 99.5}}));
}

TEST_CASE("plugin: past its most schemas the decoder's cache starts again; earlier values stay whole") {
  // A subject per tenant: each parsed schema (a descriptor pool) was kept for the task's life.
  Harness h;
  std::vector<int> ids;
  for (std::size_t i = 0; i <= ProtobufDecode::kMostSchemas + 2; ++i) {
    int id = 0;
    REQUIRE(h.context.registry
                .register_schema("t" + std::to_string(i) + "-value", "PROTOBUF",
                                 "syntax = \"proto3\";\nmessage T" + std::to_string(i) + " { string s = 1; }", id)
                .is_ok());
    ids.push_back(id);
  }
  auto body = [](const std::string& text) {  // field 1, length-delimited
    return std::string(1, '\x0a') + static_cast<char>(text.size()) + text;
  };
  auto decode = h.make("protobuf_decode", {});
  Batch first = payloads({frame(ids[0], body("first"))});
  REQUIRE(decode->process(first).is_ok());
  Batch recycled;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    recycled.recycle();
    recycled.add().payload = frame(ids[i], body("v" + std::to_string(i)));
    REQUIRE(decode->process(recycled).is_ok());
    REQUIRE(recycled.rejections.empty());
    CHECK(*recycled.records[0].value.field("s") == Value("v" + std::to_string(i)));
  }
  Batch again = payloads({frame(ids[0], body("again"))});
  REQUIRE(decode->process(again).is_ok());
  CHECK(*again.records[0].value.field("s") == Value("again"));
  CHECK(again.records[0].value.as<Struct>()->schema->type_name() == "T0");
  CHECK(*first.records[0].value.field("s") == Value("first"));  // decoded before the cache started again
  CHECK(first.records[0].value.as<Struct>()->schema->type_name() == "T0");
}

TEST_CASE("plugin: a schema registered as a base64 FileDescriptorProto decodes") {
  Harness h;
  gp::FileDescriptorProto proto;
  test::project_files().pool().FindFileByName("transactions.proto")->CopyTo(&proto);
  const int id = h.register_text(test::base64(proto.SerializeAsString()));
  auto encode = h.make("protobuf_encode", {{"message", "Transaction"}, {"subject", "x-value"}});
  Batch batch = batch_of({test::transaction("b64", "ACC1", 10.0)});
  REQUIRE(encode->process(batch).is_ok());
  std::string wire(batch.records[0].payload.view().substr(6));
  auto decode = h.make("protobuf_decode", {});
  Batch in = payloads({frame(id, wire)});
  REQUIRE(decode->process(in).is_ok());
  CHECK(in.rejections.empty());
  CHECK(in.records[0].value == test::transaction("b64", "ACC1", 10.0));
}

TEST_CASE("plugin: bad payloads are rejected with clear reasons, the rest go on") {
  Harness h;
  const int id = h.register_text(
      test::project_files().pool().FindFileByName("transactions.proto")->DebugString());
  const int avro = h.register_text("{\"type\": \"string\"}", "AVRO");
  auto decode = h.make("protobuf_decode", {});
  Batch batch =
      payloads({frame(3, ""), test::bytes({1, 0, 0, 0, 1, 0}), test::bytes({0, 0, 0}),
                frame(id, test::bytes({0x0a, 0x09, 'a'})), frame(avro, ""),
                frame(id, "", MessagePath::empty()), frame(id, test::bytes({0x0a, 0x01, 'z'})),
                // Avro bytes after the id (a long -1, zigzag 0x01) read as a negative index count.
                test::bytes({0, 0, 0, 0, avro, 0x01})});
  MessagePath five = MessagePath::empty();
  five.push(5);
  batch.records[5].payload = frame(id, "", five);
  REQUIRE(decode->process(batch).is_ok());
  REQUIRE(batch.rejections.size() == 7);
  const std::string not_protobuf = "schema id " + std::to_string(avro) +
                                   " is AVRO, not PROTOBUF: the record was written in another format (decode it "
                                   "with avro_decode)";
  CHECK(batch.rejections[6].reason == not_protobuf);
  CHECK(batch.rejections[0].reason == "unknown schema id 3: schema id 3 not found");
  CHECK(batch.rejections[1].reason == "not Confluent framing: magic byte is 1, expected 0");
  CHECK(batch.rejections[2].reason.starts_with("payload too short"));
  CHECK(batch.rejections[3].reason ==
        "malformed protobuf Transaction: length runs past the end in field 'transaction_id' at "
        "byte 2");
  CHECK(batch.rejections[4].reason == not_protobuf);
  CHECK(batch.rejections[5].reason == "message index path [5] names no message in schema id 1");
  batch.compact();
  REQUIRE(batch.records.size() == 1);
  CHECK(*batch.records[0].value.field("transaction_id") == Value("z"));

  // An unknown id is not asked for again for every record that carries it.
  CHECK(h.register_text("syntax = \"proto3\"; message Late { string x = 1; }") == 3);
  Batch again = payloads({frame(3, "")});
  REQUIRE(decode->process(again).is_ok());
  CHECK(again.rejections.size() == 1);
  auto fresh = h.make("protobuf_decode", {});
  Batch later = payloads({frame(3, "")});
  REQUIRE(fresh->process(later).is_ok());
  CHECK(later.rejections.empty());
}

TEST_CASE("plugin: message-index paths pick nested and later messages") {
  Harness h;
  const gp::FileDescriptor& file = *test::test_files().pool().FindFileByName("everything.proto");
  const int id = h.register_text(file.DebugString());
  auto decode = h.make("protobuf_decode", {{"descriptor_set", PROTOBUF_TEST_DESCRIPTOR_SET}});
  MessagePath second = MessagePath::empty(), deep = MessagePath::empty(),
              inner = MessagePath::empty();
  second.push(1);
  deep.push(1);
  deep.push(0);
  inner.push(0);
  inner.push(0);
  Batch batch = payloads({frame(id, test::bytes({0x0a, 0x01, 'n'}), second),
                          frame(id, test::bytes({0x08, 0x03}), deep),
                          frame(id, test::bytes({0x0a, 0x01, 'l'}), inner)});
  REQUIRE(decode->process(batch).is_ok());
  REQUIRE(batch.rejections.empty());
  CHECK(*batch.records[0].value.field("note") == Value("n"));
  CHECK(*batch.records[1].value.field("level") == Value(3));
  CHECK(*batch.records[2].value.field("label") == Value("l"));
}

TEST_CASE("plugin: projection `fields` decodes only those fields") {
  Harness h;
  auto encode = h.make("protobuf_encode", {{"message", "Transaction"}, {"topic", "t"}});
  auto decode =
      h.make("protobuf_decode", {{"fields", std::vector<std::string>{"amount", "account_number"}}});
  Batch batch =
      batch_of({test::transaction("a", "ACC3", 7.5), test::transaction("b", "ACC4", 8.5)});
  REQUIRE(encode->process(batch).is_ok());
  for (auto& r : batch.records) r.value = Value();
  REQUIRE(decode->process(batch).is_ok());
  CHECK(batch.records[1].value == test::make_struct({{"account_number", "ACC4"}, {"amount", 8.5}}));
  CHECK(batch.records[0].value.as<Struct>()->schema == batch.records[1].value.as<Struct>()->schema);

  // The message is the record's choice (its frame's schema id and message path), so a
  // projection that does not fit it rejects the record under the pipeline's on_error
  // (dead letter, skip or fail) rather than stopping the pipeline whatever the policy.
  auto wrong = h.make("protobuf_decode", {{"fields", std::vector<std::string>{"amount", "amout"}}});
  const Status status = wrong->process(batch);
  CHECK(status.is_ok());
  REQUIRE(batch.rejections.size() == 2);
  CHECK(batch.rejections[0].reason.find(
            "option fields names 'amout', which message Transaction does not have") !=
        std::string::npos);
}

TEST_CASE("plugin: encoder subjects follow topic, destination topic and explicit subject") {
  Harness h;
  auto by_topic = h.make("protobuf_encode", {{"message", "Transaction"}, {"topic", "main"}});
  Batch batch = batch_of({test::transaction("a", "A", 1), test::transaction("b", "B", 2)});
  batch.records[1].destination_topic = "routed";
  REQUIRE(by_topic->process(batch).is_ok());
  auto subjects = h.context.registry.subjects();
  CHECK(subjects.count("main-value") == 1);
  CHECK(subjects.count("routed-value") == 1);

  auto by_subject = h.make("protobuf_encode",
                           {{"message", "Transaction"}, {"topic", "main"}, {"subject", "fixed"}});
  REQUIRE(by_subject->process(batch).is_ok());
  subjects = h.context.registry.subjects();
  CHECK(subjects.count("fixed") == 1);
  CHECK(subjects.count("routed-value") == 1);

  // The router's `subjects` reach the encoder as a header, which goes once it is used
  // (it leaked to the output topic, and the subject was the topic's).
  Batch routed = batch_of({test::transaction("r", "R", 4)});
  routed.records[0].destination_topic = "routed";
  routed.records[0].headers.push_back({"pipehost.subject", "tenant-a-events"});
  REQUIRE(by_topic->process(routed).is_ok());
  REQUIRE(routed.rejections.empty());
  CHECK(h.context.registry.subjects().count("tenant-a-events") == 1);
  CHECK(routed.records[0].headers.empty());

  auto no_subject = h.make("protobuf_encode", {{"message", "Transaction"}});
  Batch lone = batch_of({test::transaction("c", "C", 3)});
  REQUIRE(no_subject->process(lone).is_ok());
  REQUIRE(lone.rejections.size() == 1);
  CHECK(lone.rejections[0].reason.find("no subject for this record") != std::string::npos);
}

// Everything's map field `counts` comes before its nested message Inner: the compiled
// descriptor numbers Inner 1 (after the map's entry), the registered text 0. The frame's
// path named the map entry to a reader of the text, and Inner's bytes decoded as one.
TEST_CASE("plugin: a nested message after a map field round-trips through its registered text") {
  Harness h;
  auto encode = h.make("protobuf_encode", {{"message", "pipehost.test.Everything.Inner"},
                                           {"topic", "inner"},
                                           {"descriptor_set", PROTOBUF_TEST_DESCRIPTOR_SET}});
  auto decode = h.make("protobuf_decode", {{"descriptor_set", PROTOBUF_TEST_DESCRIPTOR_SET}});
  REQUIRE(encode);
  REQUIRE(decode);
  const Value inner = test::make_struct({{"label", "x"}, {"value", std::int64_t{7}}});
  Batch batch = batch_of({inner});
  REQUIRE(encode->process(batch).is_ok());
  REQUIRE(batch.rejections.empty());
  batch.records[0].value = Value();
  REQUIRE(decode->process(batch).is_ok());
  REQUIRE(batch.rejections.empty());
  CHECK(batch.records[0].value ==
        test::make_struct({{"label", "x"}, {"value", std::int64_t{7}}, {"child", Value()}}));
}

TEST_CASE("plugin: encoder start-up and per-record errors are clear") {
  Harness h;
  std::string error;
  CHECK_FALSE(h.make("protobuf_encode", {{"message", "Nope"}}, &error));
  CHECK(error == "message 'Nope' is not in the schemas; messages: Transaction");
  CHECK_FALSE(h.make("protobuf_encode",
                     {{"message", "Transaction"}, {"descriptor_set", "/missing.desc"}}, &error));
  CHECK(error == "cannot open descriptor set /missing.desc");

  auto encode = h.make("protobuf_encode", {{"message", "Transaction"}, {"topic", "t"}});
  Batch batch = batch_of({test::make_struct({{"transaction_id", "t1"}, {"amount", "lots"}}), Value(5),
                          test::transaction("ok", "A", 1)});
  batch.records[0].payload = "the bytes it was read as";
  REQUIRE(encode->process(batch).is_ok());
  REQUIRE(batch.rejections.size() == 2);
  CHECK(batch.rejections[0].reason ==
        "cannot encode Transaction: field 'amount': expected a number, got a string");
  // Not half an encoding: its dead letter keeps what it came with.
  CHECK(batch.rejections[0].record.payload == "the bytes it was read as");
  CHECK(batch.rejections[1].reason ==
        "cannot encode Transaction: the record value is an integer, not a struct");
}

TEST_CASE("plugin: the registered schema is the message's .proto text") {
  Harness h;
  auto encode = h.make("protobuf_encode", {{"message", "Transaction"}, {"topic", "t"}});
  RegisteredSchema s;
  REQUIRE(h.context.registry.schema_by_id(1, s).is_ok());
  CHECK(s.schema_type == "PROTOBUF");
  CHECK(s.schema.find("syntax = \"proto3\";") != std::string::npos);
  CHECK(s.schema.find("import \"google/protobuf/timestamp.proto\";") != std::string::npos);
  CHECK(s.schema.find("message Transaction {") != std::string::npos);
  CHECK(h.context.registry.subjects().size() == 1);  // the well-known import is not registered
}

TEST_CASE("plugin: a schema importing files registered as its references decodes") {
  // As confluent-kafka-python's ProtobufSerializer registers a .proto with user imports:
  // each import under a subject of its own (its path), then the schema with references.
  Harness h;
  const std::string units = "syntax = \"proto3\"; package acme; message Units { int64 value = 1; }";
  const std::string money =
      "syntax = \"proto3\"; package acme; import \"acme/units.proto\";\n"
      "message Money { string currency = 1; acme.Units units = 2; }";
  const std::string payment =
      "syntax = \"proto3\"; package acme; import \"acme/money.proto\";\n"
      "import \"google/protobuf/timestamp.proto\";\n"
      "message Payment { string id = 1; acme.Money amount = 2; google.protobuf.Timestamp at = 3; }";
  int id = 0;
  REQUIRE(h.context.registry.register_schema("acme/units.proto", "PROTOBUF", units, id).is_ok());
  REQUIRE(h.context.registry
              .register_schema("acme/money.proto", "PROTOBUF", money,
                               {{"acme/units.proto", "acme/units.proto", 1}}, id)
              .is_ok());
  // The well-known import is named too (the serializer's default) and never fetched.
  REQUIRE(h.context.registry
              .register_schema("pay-value", "PROTOBUF", payment,
                               {{"acme/money.proto", "acme/money.proto", 1},
                                {"google/protobuf/timestamp.proto", "google/protobuf/timestamp.proto", 9}},
                               id)
              .is_ok());
  // Payment{id: "p1", amount: {currency: "EUR", units: {value: 5}}}, by hand.
  const std::string wire = std::string("\x0a\x02p1\x12\x09\x0a\x03" "EUR\x12\x02\x08\x05", 15);
  auto decode = h.make("protobuf_decode", {});
  Batch batch = payloads({frame(id, wire)});
  REQUIRE(decode->process(batch).is_ok());
  REQUIRE(batch.rejections.empty());
  const Value& v = batch.records[0].value;
  CHECK(*v.field("id") == Value("p1"));
  CHECK(*v.field("amount")->field("currency") == Value("EUR"));
  CHECK(*v.field("amount")->field("units")->field("value") == Value(std::int64_t{5}));
}

TEST_CASE("plugin: an import whose reference the registry lacks rejects the record, naming it") {
  Harness h;
  int id = 0;
  REQUIRE(h.context.registry
              .register_schema("pay-value", "PROTOBUF",
                               "syntax = \"proto3\"; import \"acme/money.proto\"; message P { int32 a = 1; }",
                               {{"acme/money.proto", "money-subject", 2}}, id)
              .is_ok());
  auto decode = h.make("protobuf_decode", {});
  Batch batch = payloads({frame(id, "\x08\x01")});
  REQUIRE(decode->process(batch).is_ok());
  REQUIRE(batch.rejections.size() == 1);
  CHECK_MESSAGE(batch.rejections[0].reason.find("its import acme/money.proto is registered as subject "
                                                "'money-subject' version 2, which the registry does "
                                                "not have") != std::string::npos,
                batch.rejections[0].reason);
}

TEST_CASE("plugin: an import of the message's file is registered as a reference, and decodes") {
  // acme/payment.proto imports acme/money.proto (and a well-known type): the encoder
  // registers money.proto under its own name first, then Payment with a reference to it,
  // as a Confluent registry needs to resolve the import; the decoder, without any
  // descriptor set holding acme/*, reads Payment through that reference.
  Harness h;
  auto encode = h.make("protobuf_encode", {{"message", "acme.Payment"},
                                           {"descriptor_set", PROTOBUF_TEST_DESCRIPTOR_SET},
                                           {"topic", "pay"}});
  auto subjects = h.context.registry.subjects();
  REQUIRE(subjects.count("acme/money.proto") == 1);
  REQUIRE(subjects.count("pay-value") == 1);
  CHECK(subjects.count("google/protobuf/timestamp.proto") == 0);
  RegisteredSchema payment;
  REQUIRE(h.context.registry.schema_by_id(subjects["pay-value"].back(), payment).is_ok());
  CHECK(payment.references == std::vector<SchemaReference>{{"acme/money.proto", "acme/money.proto", 1}});

  auto money = StructSchema::make({"currency", "units"});
  Batch batch = batch_of({test::make_struct(
      {{"id", "p9"}, {"amount", Struct{money, {Value("EUR"), Value(std::int64_t{12})}}}})});
  REQUIRE(encode->process(batch).is_ok());
  REQUIRE(batch.rejections.empty());
  auto decode = h.make("protobuf_decode", {});
  REQUIRE(decode->process(batch).is_ok());
  REQUIRE(batch.rejections.empty());
  const Value& v = batch.records[0].value;
  CHECK(*v.field("id") == Value("p9"));
  CHECK(*v.field("amount")->field("currency") == Value("EUR"));
  CHECK(*v.field("amount")->field("units") == Value(std::int64_t{12}));
}
