// The kafka sink against librdkafka's mock cluster: acknowledged on delivery, cancelled
// (not failed) when stopping with the broker gone, failed when delivery fails.
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>

#include "kafka_test_support.hpp"

using namespace pipehost;
using namespace pipehost::kafka::test;
using Clock = std::chrono::steady_clock;

namespace {

struct Done {
  std::mutex mutex;
  std::vector<Status> statuses;
  BatchDone callback() {
    return [this](Status s) {
      std::lock_guard lock(mutex);
      statuses.push_back(std::move(s));
    };
  }
  std::size_t count() {
    std::lock_guard lock(mutex);
    return statuses.size();
  }
};

Batch records(int n, const std::string& prefix) {
  Batch b;
  for (int i = 0; i < n; ++i) {
    Record& r = b.records.emplace_back();
    r.key = prefix + std::to_string(i);
    r.payload = "value " + std::to_string(i);
    r.headers.push_back({"h", "x"});
  }
  return b;
}

}  // namespace

TEST_CASE("sink: a batch is acknowledged once every record is delivered") {
  testing::MockKafka kafka;
  kafka.create_topic("out", 2);
  testing::TestContext context;
  context.bootstrap = kafka.bootstrap();
  auto sink = kafka::test::sink(context, {{"topic", std::string("out")}});
  REQUIRE(sink->start().is_ok());
  Done done;
  Batch b = records(100, "k");
  b.records[7].destination_topic = "elsewhere";
  kafka.create_topic("elsewhere", 1);
  REQUIRE(sink->write(b, done.callback()).is_ok());
  REQUIRE(testing::eventually([&] { return done.count() == 1; }));
  CHECK(done.statuses[0].is_ok());
  auto out = kafka.read_all("out", 2);
  CHECK(out.size() == 99);
  auto moved = kafka.read_all("elsewhere", 1);
  REQUIRE(moved.size() == 1);
  CHECK(moved[0].key == "k7");
  CHECK(moved[0].headers.at(0).second == "x");
  REQUIRE(sink->stop().is_ok());
}

TEST_CASE("sink: stopping with the broker gone and the queue full cancels, promptly") {
  testing::MockKafka kafka;
  kafka.create_topic("out", 1);
  kafka.broker_down();
  testing::TestContext context;
  context.bootstrap = kafka.bootstrap();
  auto sink = kafka::test::sink(
      context, {{"topic", std::string("out")},
                {"properties", StringMap{{"queue.buffering.max.messages", "10"}}}});
  REQUIRE(sink->start().is_ok());
  Done done;
  std::atomic<bool> returned{false};
  Batch b = records(50, "k");
  std::thread writer([&] {
    CHECK(sink->write(b, done.callback()).is_ok());
    returned = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK_FALSE(returned);  // waiting for room, as backpressure should
  context.stop_requested = true;
  auto asked = Clock::now();
  writer.join();
  CHECK(Clock::now() - asked < std::chrono::seconds(2));
  kafka.broker_up();  // the 10 queued records are delivered, then done is called
  REQUIRE(testing::eventually([&] { return done.count() == 1; }));
  CHECK(done.statuses[0].code() == Code::cancelled);
  REQUIRE(sink->stop().is_ok());
}

// librdkafka refuses a record larger than message.max.bytes itself: the record is
// rejected (the host dead-letters it) and the others are delivered; it stopped the
// pipeline at every restart, naming no record.
TEST_CASE("sink: a record larger than message.max.bytes is rejected, naming it; the others are delivered") {
  testing::MockKafka kafka;
  kafka.create_topic("out", 1);
  testing::TestContext context;
  context.bootstrap = kafka.bootstrap();
  auto sink = kafka::test::sink(context, {{"topic", std::string("out")},
                                          {"properties", StringMap{{"message.max.bytes", "2000"}}}});
  REQUIRE(sink->start().is_ok());
  Batch b = records(3, "k");
  b.records[1].payload = std::string(5000, 'x');
  b.records[1].origin = {"in", 2, 41};
  sink->prepare(b);
  CHECK(b.rejections.empty());
  Done done;
  REQUIRE(sink->write(b, done.callback()).is_ok());
  REQUIRE(b.rejections.size() == 1);
  CHECK(b.rejections[0].record.origin.offset == 41);
  CHECK(b.rejections[0].reason.rfind("kafka: the record from in/2@41 to out is larger than message.max.bytes", 0) == 0);
  REQUIRE(testing::eventually([&] { return done.count() == 1; }));
  CHECK(done.statuses[0].is_ok());
  CHECK(context.counter_value("records_out") == 2);
  REQUIRE(sink->stop().is_ok());
}

// A stop with the broker gone: the host has waited for these records already; the flush
// gives up once the queue has not moved for 5 s, and stop's flush at once (each used to
// wait 30 s, which with the dead-letter producer's added up to minutes).
TEST_CASE("sink: while the host stops, a flush with the broker gone gives up in 5 s, and stop at once") {
  testing::MockKafka kafka;
  kafka.create_topic("out", 1);
  testing::TestContext context;
  context.bootstrap = kafka.bootstrap();
  context.properties = {{"reconnect.backoff.max.ms", "100"}};  // back at once after broker_up
  auto sink = kafka::test::sink(context, {{"topic", std::string("out")}});
  REQUIRE(sink->start().is_ok());
  kafka.broker_down();
  Done done;
  Batch b = records(20, "k");
  REQUIRE(sink->write(b, done.callback()).is_ok());
  context.stop_requested = true;
  auto asked = Clock::now();
  REQUIRE(sink->flush().is_ok());
  const auto flushed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - asked).count();
  CHECK(flushed_ms >= 4000);
  CHECK(flushed_ms < 10000);
  asked = Clock::now();
  REQUIRE(sink->flush().is_ok());  // stop's, after the host's
  CHECK(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - asked).count() < 2000);
  CHECK(done.count() == 0);  // not acknowledged: read again by the next run
  kafka.broker_up();  // the reports come (the batch's completion is not left behind)
  REQUIRE(testing::eventually([&] { return done.count() == 1; }));
  REQUIRE(sink->stop().is_ok());
}

// A sink destroyed with records it never delivered (the host gave up on them at the
// stop): their batch's completion, which holds the host's callback, is freed without
// calling it. It leaked.
TEST_CASE("sink: destroyed with records never delivered, it frees their batch and tells nobody") {
  testing::MockKafka kafka;
  kafka.create_topic("out", 1);
  testing::TestContext context;
  context.bootstrap = kafka.bootstrap();
  auto sink = kafka::test::sink(context, {{"topic", std::string("out")}});
  REQUIRE(sink->start().is_ok());  // the broker up: the records wait in the partition's queue
  kafka.broker_down();
  Done done;
  BatchDone counted = done.callback();
  auto sentinel = std::make_shared<int>(0);
  const std::weak_ptr<int> held = sentinel;
  Batch b = records(5, "k");
  REQUIRE(sink->write(b, [counted, s = std::move(sentinel)](Status st) { counted(std::move(st)); }).is_ok());
  CHECK_FALSE(held.expired());  // the batch's completion holds the callback
  context.stop_requested = true;
  REQUIRE(sink->flush().is_ok());
  REQUIRE(sink->stop().is_ok());
  sink.reset();
  CHECK(held.expired());
  CHECK(done.count() == 0);
}

TEST_CASE("sink: a record waits out a broker outage (no message timeout), then the batch is ok") {
  testing::MockKafka kafka;
  kafka.create_topic("out", 1);
  kafka.broker_down();
  testing::TestContext context;
  context.bootstrap = kafka.bootstrap();
  context.properties = {{"reconnect.backoff.max.ms", "100"}};
  auto sink = kafka::test::sink(context, {{"topic", std::string("out")}});
  REQUIRE(sink->start().is_ok());
  Done done;
  Batch b = records(3, "k");
  REQUIRE(sink->write(b, done.callback()).is_ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  CHECK(done.count() == 0);
  kafka.broker_up();
  REQUIRE(testing::eventually([&] { return done.count() == 1; }));
  CHECK_MESSAGE(done.statuses[0].is_ok(), done.statuses[0].message());
  CHECK(kafka.read_all("out").size() == 3);
  REQUIRE(sink->stop().is_ok());
}

TEST_CASE("sink: a record that cannot be delivered fails the batch") {
  testing::MockKafka kafka;
  kafka.create_topic("out", 1);
  kafka.broker_down();
  testing::TestContext context;
  context.bootstrap = kafka.bootstrap();
  auto sink = kafka::test::sink(
      context, {{"topic", std::string("out")},
                {"properties", StringMap{{"message.timeout.ms", "500"}}}});
  REQUIRE(sink->start().is_ok());
  Done done;
  Batch b = records(3, "k");
  REQUIRE(sink->write(b, done.callback()).is_ok());
  REQUIRE(testing::eventually([&] { return done.count() == 1; }));
  CHECK(done.statuses[0].code() == Code::fatal);
  CHECK(done.statuses[0].message().find("delivery of the record to out failed") != std::string::npos);
  REQUIRE(sink->stop().is_ok());
}
