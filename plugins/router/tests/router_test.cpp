// router: seed 004's layout declared in config, unknown destinations rejected with the
// reason, and the destination table validated as a whole.
#include <doctest/doctest.h>

#include <chrono>

#include <pipehost/testing.hpp>

#include "router.hpp"

using namespace pipehost;
using pipehost::testing::StageHarness;

namespace {

std::map<std::string, OptionValue> seed_layout() {
  return {{"field", std::string("destination_service_type")},
          {"topics", StringMap{{"FINANCE", "processor.to.finance"},
                               {"MARKETING", "processor.to.marketing"},
                               {"LOGISTICS", "processor.to.logistics"}}},
          {"subjects", StringMap{{"FINANCE", "processor.to.consumer-value"},
                                 {"MARKETING", "processor.to.consumer-value"},
                                 {"LOGISTICS", "processor.to.consumer-value"}}},
          {"fields", StringMap{{"producer_service_id", "origin_service_id"},
                               {"destination_type", "destination_service_type"},
                               {"producer_event_timestamp", "event_timestamp"},
                               {"payload", "payload"}}},
          {"constants", StringMap{{"processor_service_id", "event-processor-1"}}},
          {"now_ms", std::vector<std::string>{"processor_event_timestamp"}}};
}

Record event(const std::string& destination, std::int64_t ts) {
  static auto schema = StructSchema::make({"origin_service_id", "origin_service_type",
                                           "destination_service_type", "event_timestamp", "payload"});
  Record r;
  r.key = std::string("123456:") + destination;
  r.value = Struct{schema, {Value("123456"), Value("financial"), Value(destination), Value(ts),
                            Value("dummy-payload " + destination)}};
  return r;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

TEST_CASE("router: seed 004's event processor, declared in config") {
  StageHarness<router::Router> h(seed_layout());
  Batch b;
  const std::int64_t before = now_ms();
  b.records.push_back(event("FINANCE", 1000));
  b.records.push_back(event("MARKETING", 2000));
  REQUIRE(h.process(b).empty());
  REQUIRE(b.records.size() == 2);
  const Record& r = b.records[0];
  CHECK(r.destination_topic == "processor.to.finance");
  CHECK(std::string_view(r.key) == "123456:FINANCE");
  REQUIRE(r.header("pipehost.subject"));
  CHECK(*r.header("pipehost.subject") == "processor.to.consumer-value");
  CHECK(*r.value.field("producer_service_id") == Value("123456"));
  CHECK(*r.value.field("processor_service_id") == Value("event-processor-1"));
  CHECK(*r.value.field("destination_type") == Value("FINANCE"));
  CHECK(*r.value.field("producer_event_timestamp") == Value(std::int64_t{1000}));
  CHECK(*r.value.field("payload") == Value("dummy-payload FINANCE"));
  CHECK(r.value.field("origin_service_type") == nullptr);
  CHECK(r.value.field("processor_event_timestamp")->as<std::int64_t>());
  CHECK(*r.value.field("processor_event_timestamp")->as<std::int64_t>() >= before);
  CHECK(b.records[1].destination_topic == "processor.to.marketing");
  CHECK(h.context.counter_value("routed_FINANCE") == 1);
}

TEST_CASE("router: an unknown destination is rejected with the reason, the rest go on") {
  StageHarness<router::Router> h(seed_layout());
  Batch b;
  b.records.push_back(event("HR", 1));
  b.records.push_back(event("marketing", 1));  // case-sensitive, as in the seed
  b.records.push_back(event("LOGISTICS", 1));
  b.records.emplace_back().value = Struct{StructSchema::make({"x"}), {Value("y")}};
  auto rejected = h.process(b);
  REQUIRE(rejected.size() == 3);
  CHECK(rejected[0].reason ==
        "destination_service_type 'HR' is not a routed destination (FINANCE, LOGISTICS, "
        "MARKETING): add it to the router's topics");
  CHECK(rejected[1].reason.find("'marketing'") != std::string::npos);
  CHECK(rejected[2].reason == "no field destination_service_type to route by");
  REQUIRE(b.records.size() == 1);
  CHECK(b.records[0].destination_topic == "processor.to.logistics");
}

TEST_CASE("router: thousands of destinations: each found, an unknown one's reason names a few and the count") {
  StringMap topics;
  for (int i = 0; i < 5000; ++i) topics["T" + std::to_string(10000 + i)] = "topic." + std::to_string(i);
  StageHarness<router::Router> h({{"field", std::string("destination_service_type")}, {"topics", topics}});
  Batch b;
  b.records.push_back(event("T14999", 1));
  b.records.push_back(event("T10000", 1));
  b.records.push_back(event("T20000", 1));
  auto rejected = h.process(b);
  REQUIRE(rejected.size() == 1);
  CHECK(rejected[0].reason ==
        "destination_service_type 'T20000' is not a routed destination (T10000, T10001, T10002, T10003, "
        "T10004, T10005, T10006, T10007, T10008, T10009, ... 5000 in all): add it to the router's topics");
  REQUIRE(b.records.size() == 2);
  CHECK(b.records[0].destination_topic == "topic.4999");
  CHECK(b.records[1].destination_topic == "topic.0");
}

TEST_CASE("router: without a reshape the value is kept as it is; no subjects, no header") {
  StageHarness<router::Router> h({{"field", std::string("destination_service_type")},
                                  {"topics", StringMap{{"FINANCE", "f"}}}});
  Batch b;
  b.records.push_back(event("FINANCE", 7));
  REQUIRE(h.process(b).empty());
  CHECK(b.records[0].destination_topic == "f");
  CHECK(b.records[0].headers.empty());
  CHECK(*b.records[0].value.field("origin_service_type") == Value("financial"));
}

TEST_CASE("router: an integer or a boolean field routes by its text; other kinds are refused saying so") {
  StageHarness<router::Router> h({{"field", std::string("tenant")},
                                  {"topics", StringMap{{"7", "seven"}, {"true", "yes"}, {"x", "ex"}}}});
  static const auto schema = StructSchema::make({"tenant"});
  Batch b;
  for (Value v : {Value(std::int64_t{7}), Value(true), Value("x"), Value(7.5), Value(std::int64_t{8})})
    b.records.emplace_back().value = Struct{schema, {v}};
  auto rejected = h.process(b);
  REQUIRE(rejected.size() == 2);
  CHECK(rejected[0].reason == "field tenant is not a string, an integer or a boolean: 7.5");
  CHECK(rejected[1].reason.find("tenant '8' is not a routed destination") == 0);
  REQUIRE(b.records.size() == 3);
  CHECK(b.records[0].destination_topic == "seven");
  CHECK(b.records[1].destination_topic == "yes");
  CHECK(b.records[2].destination_topic == "ex");
}

TEST_CASE("router: a destination without its topic or subject is a validation problem") {
  auto layout = seed_layout();
  std::get<StringMap>(layout["subjects"]).erase("MARKETING");
  auto problems = StageHarness<router::Router>::problems(layout);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0] ==
        "option 'subjects': destination MARKETING has an output topic but no output subject: add "
        "MARKETING = \"<subject>\" to subjects");

  layout = seed_layout();
  std::get<StringMap>(layout["subjects"])["HR"] = "hr-value";
  problems = StageHarness<router::Router>::problems(layout);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("destination HR has an output subject but no output topic") != std::string::npos);

  layout = seed_layout();
  std::get<StringMap>(layout["constants"])["payload"] = "x";
  problems = StageHarness<router::Router>::problems(layout);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("output field payload is set twice") != std::string::npos);

  // A topic name the broker would refuse: said by validate, not at the first record.
  layout = seed_layout();
  std::get<StringMap>(layout["topics"])["MARKETING"] = "tenant a/orders";
  problems = StageHarness<router::Router>::problems(layout);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("destination MARKETING: 'tenant a/orders' is not a Kafka topic name") != std::string::npos);

  CHECK(!StageHarness<router::Router>::problems({{"field", std::string("x")}}).empty());
}

TEST_CASE("router: a subject header the input carried is replaced; a long value is cut in the reason") {
  StageHarness<router::Router> h(seed_layout());
  Batch b;
  Record r = event("FINANCE", 1);
  r.headers.push_back({"pipehost.subject", "chosen-by-the-sender"});
  b.records.push_back(std::move(r));
  b.records.push_back(event(std::string(600000, 'X'), 1));
  auto rejected = h.process(b);
  REQUIRE(rejected.size() == 1);
  CHECK(rejected[0].reason.size() < 300);
  CHECK(rejected[0].reason.find("XXX...' is not a routed destination") != std::string::npos);
  REQUIRE(b.records.size() == 1);
  std::vector<std::string> subjects;
  for (const auto& header : b.records[0].headers)
    if (header.key == "pipehost.subject") subjects.push_back(header.value);
  CHECK(subjects == std::vector<std::string>{"processor.to.consumer-value"});
}

TEST_CASE("router: reshaped in place, whatever the input's shape; a record it rejects keeps its value") {
  StageHarness<router::Router> h({{"field", std::string("to")},
                                  {"topics", StringMap{{"A", "topic.a"}}},
                                  {"fields", StringMap{{"first", "x"}, {"again", "x"}, {"other", "y"}}},
                                  {"constants", StringMap{{"made_by", "a constant longer than sixteen"}}}});
  auto one = StructSchema::make({"to", "x", "y", "z"});
  auto two = StructSchema::make({"y", "to", "x"});  // another order: the cached places change
  Batch b;
  for (int i = 0; i < 6; ++i) {
    const std::string n = std::to_string(i);
    if (i % 2 == 0)
      b.records.emplace_back().value = Struct{one, {Value("A"), Value("x-long-enough-for-the-heap " + n), Value(std::int64_t{i}), Value("z")}};
    else
      b.records.emplace_back().value = Struct{two, {Value(std::int64_t{i}), Value("A"), Value("x-long-enough-for-the-heap " + n)}};
  }
  Value short_of_y = Struct{StructSchema::make({"to", "x"}), {Value("A"), Value("kept")}};
  b.records.emplace_back().value = short_of_y;
  auto rejected = h.process(b);
  REQUIRE(rejected.size() == 1);
  CHECK(rejected[0].reason == "no field y to copy into other");
  CHECK(rejected[0].record.value == short_of_y);
  REQUIRE(b.records.size() == 6);
  for (int i = 0; i < 6; ++i) {
    CAPTURE(i);
    const Value& v = b.records[static_cast<std::size_t>(i)].value;
    const Value x("x-long-enough-for-the-heap " + std::to_string(i));
    CHECK(*v.field("first") == x);
    CHECK(*v.field("again") == x);
    CHECK(*v.field("other") == Value(std::int64_t{i}));
    CHECK(*v.field("made_by") == Value("a constant longer than sixteen"));
    CHECK(v.as<Struct>()->fields.size() == 4);
    CHECK(v.field("to") == nullptr);
  }
}
