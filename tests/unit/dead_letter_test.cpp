// The dead-letter writer against librdkafka's mock cluster.
#include <doctest/doctest.h>

#include <atomic>
#include <map>

#include "../support/mock_kafka.hpp"
#include "pipehost/testing.hpp"
#include "runtime/dead_letter.hpp"
#include "test_support.hpp"

using namespace pipehost;
using namespace pipehost::host;
using Clock = std::chrono::steady_clock;

namespace {

const ComponentSpec& kafka_sink() {
  const ComponentSpec* spec = test::plugins().find("kafka", Kind::sink);
  REQUIRE(spec);
  return *spec;
}

std::vector<Rejection> rejection(const std::string& value) {
  Record r;
  r.key = "k";
  r.payload = value;
  r.origin = {"source-topic", 2, 41};
  r.headers.push_back({"original", "header"});
  return {Rejection{r, "bad " + value}};
}

// A mock cluster holding the dead-letter topic "dlq", and a context pointed at it.
struct DeadLetterCluster {
  testing::MockKafka kafka;
  testing::TestContext context;
  DeadLetterCluster() {
    kafka.create_topic("dlq");
    context.bootstrap = kafka.bootstrap();
  }
};

}  // namespace

TEST_CASE("a dead letter says whether its payload is the one its source read") {
  DeadLetterCluster cluster;
  auto& [kafka, context] = cluster;
  DeadLetterWriter writer(kafka_sink(), context, "dlq", "orders");
  static const std::string read_bytes = "as read";
  auto rejections = rejection("ignored");
  rejections[0].record.payload.borrow(read_bytes);  // what a source hands over, unchanged
  REQUIRE(writer.write(rejections, "transforms[1]").is_ok());
  auto messages = kafka.read_all("dlq");
  REQUIRE(messages.size() == 1);
  CHECK(messages[0].value == "as read");
  bool source = false;
  for (const auto& [name, value] : messages[0].headers) source = source || (name == "pipehost.payload" && value == "source");
  CHECK(source);
}

TEST_CASE("dead letters carry the record and headers naming pipeline, stage, error, origin") {
  DeadLetterCluster cluster;
  auto& [kafka, context] = cluster;
  DeadLetterWriter writer(kafka_sink(), context, "dlq", "orders");
  REQUIRE(writer.write(rejection("v1"), "transforms[0]").is_ok());
  auto messages = kafka.read_all("dlq");
  REQUIRE(messages.size() == 1);
  CHECK(messages[0].value == "v1");
  CHECK(messages[0].key == "k");
  using H = std::pair<std::string, std::string>;
  CHECK(messages[0].headers == std::vector<H>{{"original", "header"},
                                              {"pipehost.pipeline", "orders"},
                                              {"pipehost.stage", "transforms[0]"},
                                              {"pipehost.error", "bad v1"},
                                              {"pipehost.payload", "stage"},  // set, not as read
                                              {"pipehost.origin.topic", "source-topic"},
                                              {"pipehost.origin.partition", "2"},
                                              {"pipehost.origin.offset", "41"}});
}

// A reader takes the first header of a name: one the record came with (sent by its
// producer, or pipehost.subject passed between stages) must not stand before the writer's.
TEST_CASE("a letter's own headers replace those of the same names the record came with") {
  DeadLetterCluster cluster;
  auto& [kafka, context] = cluster;
  DeadLetterWriter writer(kafka_sink(), context, "dlq", "orders");
  auto rejections = rejection("v1");
  auto& headers = rejections[0].record.headers;
  headers.push_back({"pipehost.error", "fake"});
  headers.push_back({"pipehost.payload.truncated", "fake"});
  headers.push_back({"pipehost.subject", "out-value"});
  REQUIRE(writer.write(rejections, "transforms[0]").is_ok());
  auto messages = kafka.read_all("dlq");
  REQUIRE(messages.size() == 1);
  std::map<std::string, int> count;
  for (const auto& [name, value] : messages[0].headers) {
    ++count[name];
    if (name == "pipehost.error") CHECK(value == "bad v1");
  }
  CHECK(count["pipehost.error"] == 1);
  CHECK(count["pipehost.payload.truncated"] == 0);
  CHECK(count["pipehost.subject"] == 0);
  CHECK(count["original"] == 1);
}

TEST_CASE("a dead letter of a record near the broker's limit keeps the start of its payload, and says so") {
  DeadLetterCluster cluster;
  auto& [kafka, context] = cluster;
  DeadLetterWriter writer(kafka_sink(), context, "dlq", "orders");
  static const std::string read_bytes(999'000, 'x');  // with the headers, past message.max.bytes
  auto rejections = rejection("ignored");
  rejections[0].record.payload.borrow(read_bytes);
  REQUIRE(writer.write(rejections, "transforms[0]").is_ok());
  auto messages = kafka.read_all("dlq");
  REQUIRE(messages.size() == 1);
  CHECK(messages[0].value.size() < kMostLetterBytes);
  CHECK(read_bytes.starts_with(messages[0].value));
  std::map<std::string, std::string> headers(messages[0].headers.begin(), messages[0].headers.end());
  CHECK(headers["pipehost.payload"] == "truncated");  // so replay leaves it
  CHECK(headers["pipehost.payload.truncated"] == std::to_string(messages[0].value.size()) + " of 999000 bytes kept");
  CHECK(headers["pipehost.origin.offset"] == "41");

  // With a lower message.max.bytes for every client ([kafka.properties]), a letter is cut
  // to fit under it: the producer refused the letter, and it was lost while the batch was
  // committed past it.
  context.properties["message.max.bytes"] = "20000";
  DeadLetterWriter lower(kafka_sink(), context, "dlq", "orders");
  REQUIRE(lower.write(rejections, "transforms[0]").is_ok());
  messages = kafka.read_all("dlq");
  REQUIRE(messages.size() == 2);
  CHECK(messages[1].value.size() < 20000);
  CHECK(read_bytes.starts_with(messages[1].value));
  // A key past it goes too (and the record's own headers), saying so.
  auto big_key = rejection("v");
  big_key[0].record.key = std::string(30000, 'k');
  REQUIRE(lower.write(big_key, "transforms[0]").is_ok());
  messages = kafka.read_all("dlq");
  REQUIRE(messages.size() == 3);
  CHECK(messages[2].key.empty());
  std::map<std::string, std::string> dropped(messages[2].headers.begin(), messages[2].headers.end());
  CHECK(dropped["pipehost.key.dropped"] == "30000 bytes");
  CHECK(dropped.count("original") == 0);
  CHECK(dropped["pipehost.error"] == "bad v");
  // A limit no letter fits under: the writer stops, naming it, instead of losing it.
  context.properties["message.max.bytes"] = "1000";  // librdkafka's least
  DeadLetterWriter tiny(kafka_sink(), context, "dlq", "orders");
  Status refused = tiny.write(rejection(std::string(2000, 'r')), "transforms[0]");
  CHECK(refused.code() == Code::fatal);
  INFO(refused.message());
  CHECK(refused.message().find("the producer refuses a letter") != std::string::npos);
}

// The defect: every message carried the address of a stack variable of write(); a write
// that gave up returned while its messages were queued, and their reports later wrote
// through the dangling pointer (into the next write's outcome, or anywhere).
TEST_CASE("a report arriving after write() gave up belongs to that write, not the next") {
  DeadLetterCluster cluster;
  auto& [kafka, context] = cluster;
  context.properties = {{"reconnect.backoff.max.ms", "100"}};
  DeadLetterWriter writer(kafka_sink(), context, "dlq", "p", DeadLetterTimeouts{1500});

  kafka.broker_down();
  auto started = Clock::now();
  Status first = writer.write(rejection("lost"), "sink",
                              [&] { return Clock::now() - started > std::chrono::milliseconds(300); });
  CHECK(first.code() == Code::cancelled);  // given up because the host stops: not a failure
  // The first record times out inside librdkafka (message.timeout.ms 1.5 s, checked every
  // second); its failure report waits in the queue for the writer's next poll.
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  kafka.broker_up();
  Status second = writer.write(rejection("kept"), "sink");
  CHECK_MESSAGE(second.is_ok(), second.message());
  auto messages = kafka.read_all("dlq");
  REQUIRE(messages.size() == 1);
  CHECK(messages[0].value == "kept");
}

TEST_CASE("a letter names where its record was read, unless replay read it from this topic") {
  DeadLetterCluster cluster;
  auto& [kafka, context] = cluster;
  DeadLetterWriter writer(kafka_sink(), context, "dlq", "p");
  auto origin_headers = [&](std::size_t i) {
    std::map<std::string, std::string> out;
    const auto messages = kafka.read_all("dlq");
    for (const auto& [name, value] : messages.at(i).headers)
      if (name.rfind("pipehost.origin.", 0) == 0) out[name] = value;
    return out;
  };
  // Replayed: read from the dead-letter topic, carrying its first letter's origin.
  auto replayed = rejection("again");
  replayed[0].record.origin = {"dlq", 0, 7};
  replayed[0].record.headers = {{"pipehost.origin.topic", "orders"}, {"pipehost.origin.partition", "1"},
                                {"pipehost.origin.offset", "12"}};
  REQUIRE(writer.write(replayed, "sink").is_ok());
  CHECK(origin_headers(0) == std::map<std::string, std::string>{
            {"pipehost.origin.topic", "orders"}, {"pipehost.origin.partition", "1"}, {"pipehost.origin.offset", "12"}});
  // A replayed record gone on to another topic and read there: where it was read now.
  auto downstream = rejection("later");
  downstream[0].record.headers = replayed[0].record.headers;
  REQUIRE(writer.write(downstream, "sink").is_ok());
  CHECK(origin_headers(1) == std::map<std::string, std::string>{{"pipehost.origin.topic", "source-topic"},
                                                                {"pipehost.origin.partition", "2"},
                                                                {"pipehost.origin.offset", "41"}});
}

TEST_CASE("a dead letter waits out a broker outage, then is written once") {
  DeadLetterCluster cluster;
  auto& [kafka, context] = cluster;
  context.properties = {{"reconnect.backoff.max.ms", "100"}};
  DeadLetterWriter writer(kafka_sink(), context, "dlq", "p");  // no message timeout
  kafka.broker_down();
  std::thread restorer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(2000));
    kafka.broker_up();
  });
  Status s = writer.write(rejection("kept"), "sink");
  restorer.join();
  CHECK_MESSAGE(s.is_ok(), s.message());
  auto messages = kafka.read_all("dlq");
  REQUIRE(messages.size() == 1);
  CHECK(messages[0].value == "kept");
}

TEST_CASE("a write that cannot reach the broker gives up as cancelled when told to stop") {
  DeadLetterCluster cluster;
  auto& [kafka, context] = cluster;
  DeadLetterWriter writer(kafka_sink(), context, "dlq", "p");
  kafka.broker_down();
  std::atomic<bool> stop{false};
  auto started = Clock::now();
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop = true;
  });
  Status s = writer.write(rejection("x"), "sink", [&] { return stop.load(); });
  stopper.join();
  CHECK(s.code() == Code::cancelled);  // the task stops, not fails, nor logs "retrying"
  CHECK(Clock::now() - started < std::chrono::seconds(5));
  kafka.broker_up();  // the queued record then arrives before the writer goes
}

TEST_CASE("dead letter: a long reason is cut at a UTF-8 boundary, saying how much") {
  std::string reason = "field 'x' is '" + std::string(kMostReasonBytes - 15, 'a') + "\xc3\xa9" + std::string(5000, 'b');
  const std::size_t before = reason.size();
  clip_reason(reason);
  CHECK(reason.size() < kMostReasonBytes + 40);
  CHECK(reason.find("\xc3") == std::string::npos);  // the two-byte é is not split
  CHECK(reason.ends_with("... (" + std::to_string(before - (kMostReasonBytes - 1)) + " bytes more)"));
  std::string short_one = "short";
  clip_reason(short_one);
  CHECK(short_one == "short");
}

TEST_CASE("rewound dead letters: what a batch read again dead-lettered is not written twice") {
  auto letter = [](std::int32_t partition, std::int64_t offset) {
    Record r;
    r.origin = {"t", partition, offset};
    return Rejection{r, "bad"};
  };
  RewoundDeadLetters letters;
  // A batch dead-letters offsets 5 and 7 of t/0, and one record with no origin; it is
  // written: nothing is remembered.
  letters.batch_started();
  letters.written_to_topic({letter(0, 5), letter(0, 7), letter(-1, -1)});
  letters.batch_written({{"t", 0, 0, 10}});
  std::vector<Rejection> again{letter(0, 5)};
  CHECK(letters.remove_written(again) == 0);
  CHECK(letters.empty());

  // The next batch dead-letters the same, then a sink has it read again.
  letters.batch_started();
  letters.written_to_topic({letter(0, 5), letter(0, 7), letter(-1, -1)});
  letters.rewound();
  // The read again rejects 5 and 7 again, and 8 (new) and 5 of another partition.
  letters.batch_started();
  std::vector<Rejection> rejected{letter(0, 5), letter(0, 8), letter(1, 5), letter(0, 7)};
  CHECK(letters.remove_written(rejected) == 2);
  REQUIRE(rejected.size() == 2);
  CHECK(rejected[0].record.origin.offset == 8);
  CHECK(rejected[1].record.origin.partition == 1);
  // A written batch that ends before 7 forgets 5 only; one of another partition, nothing.
  letters.batch_written({{"t", 0, 0, 6}, {"t", 1, 0, 100}});
  std::vector<Rejection> both{letter(0, 5), letter(0, 7)};
  CHECK(letters.remove_written(both) == 1);
  REQUIRE(both.size() == 1);
  CHECK(both[0].record.origin.offset == 5);
  letters.batch_written({{"t", 0, 6, 8}});
  CHECK(letters.empty());
}

namespace {
// A record of t/0 at `offset`, rejected.
Rejection letter(std::int64_t offset) {
  Record r;
  r.origin = {"t", 0, offset};
  return Rejection{r, "bad"};
}
}  // namespace

TEST_CASE("rewound dead letters: the letters of batches in flight when a done asked to read again") {
  // An asynchronous sink's done says rewind after later batches were written: their
  // letters were written too, and the read again must not write them twice.
  RewoundDeadLetters letters;
  letters.batch_started();
  letters.written_to_topic({letter(2)});
  letters.batch_written({{"t", 0, 0, 4}});
  letters.acknowledged({{"t", 0, 4}});  // that batch is acknowledged: its letter is done with
  letters.batch_started();
  letters.written_to_topic({letter(5)});
  letters.batch_written({{"t", 0, 4, 8}});
  letters.batch_started();
  letters.written_to_topic({letter(9)});
  letters.batch_written({{"t", 0, 8, 12}});
  letters.rewound_in_flight();  // read again from 4
  letters.batch_started();
  std::vector<Rejection> again{letter(5), letter(9), letter(10)};
  CHECK(letters.remove_written(again) == 2);
  REQUIRE(again.size() == 1);
  CHECK(again[0].record.origin.offset == 10);
  std::vector<Rejection> old{letter(2)};
  CHECK(letters.remove_written(old) == 0);
}

// A router's copies of one record to topics A and B: A's copy dead-lettered, then the
// batch read again (B's copy refused by the broker). The read again rejects both: only
// A's is on the dead-letter topic already. B's used to be dropped as "already there".
TEST_CASE("rewound dead letters: another copy of a dead-lettered record is still dead-lettered") {
  auto copy = [](std::int64_t offset, std::string destination) {
    Record r;
    r.origin = {"t", 0, offset};
    r.destination_topic = std::move(destination);
    return Rejection{r, "refused"};
  };
  RewoundDeadLetters letters;
  letters.batch_started();
  letters.written_to_topic({copy(10, "A")});
  letters.rewound();
  letters.batch_started();
  std::vector<Rejection> again{copy(10, "A"), copy(10, "B")};
  CHECK(letters.remove_written(again) == 1);
  REQUIRE(again.size() == 1);
  CHECK(again[0].record.destination_topic == "B");
  // Two alike records made of one (a fan-out to one topic), one dead-lettered before.
  letters.written_to_topic({copy(10, "B")});
  letters.rewound();
  std::vector<Rejection> alike{copy(10, "B"), copy(10, "B")};
  CHECK(letters.remove_written(alike) == 1);
  CHECK(alike.size() == 1);
}

TEST_CASE("rewound dead letters: a letter passed by the read again is kept until that batch is acknowledged") {
  // Read again once (a rewind), the batch that passes the letter is written; before it is
  // acknowledged a done asks to read again a second time: the letter is still written.
  RewoundDeadLetters letters;
  letters.batch_started();
  letters.written_to_topic({letter(3)});
  letters.rewound();
  letters.batch_started();
  std::vector<Rejection> first_again{letter(3)};
  CHECK(letters.remove_written(first_again) == 1);
  letters.batch_written({{"t", 0, 0, 8}});
  letters.rewound_in_flight();  // the batch was not acknowledged: read again from 0
  letters.batch_started();
  std::vector<Rejection> second_again{letter(3)};
  CHECK(letters.remove_written(second_again) == 1);
  CHECK(second_again.empty());
  // Acknowledged after a third read: done with.
  letters.batch_written({{"t", 0, 0, 8}});
  letters.acknowledged({{"t", 0, 8}});
  letters.rewound_in_flight();
  std::vector<Rejection> later{letter(3)};
  CHECK(letters.remove_written(later) == 0);
}
