// The kafka source against librdkafka's mock cluster: spans, commits, resume, seek,
// pause, the end of a bounded read, missing topics. Waits poll until a condition holds.
#include <algorithm>
#include <chrono>
#include <future>
#include <map>
#include <thread>

#include "kafka_test_support.hpp"

using namespace pipehost;
using namespace pipehost::kafka::test;
using Clock = std::chrono::steady_clock;

namespace {

struct Reader {
  explicit Reader(SourceStage& s) : source(s) {}
  SourceStage& source;
  std::vector<Batch> batches;
  std::map<std::int32_t, std::vector<std::int64_t>> offsets;  // per partition, in order
  bool ended = false;

  std::size_t records() const {
    std::size_t n = 0;
    for (const auto& [p, o] : offsets) n += o.size();
    return n;
  }
  // Polls until `done` or 30 s; each poll's batch is kept.
  bool until(const std::function<bool()>& done, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
    auto deadline = Clock::now() + limit;
    while (!done() && Clock::now() < deadline && !ended) poll_once();
    return done();
  }
  void poll_once() {
    Batch b;
    b.capacity = 16;
    Status s = source.poll(b, Millis(100), ended);
    REQUIRE_MESSAGE(s.is_ok(), s.message());
    for (const auto& r : b.records) offsets[r.origin.partition].push_back(r.origin.offset);
    if (!b.records.empty() || !b.spans.empty()) batches.push_back(std::move(b));
  }
  std::vector<Position> next_positions() const {
    std::vector<Position> out;
    for (const auto& [p, o] : offsets) out.push_back({"events", p, o.back() + 1});
    return out;
  }
};

std::int64_t committed(testing::MockKafka& kafka, const std::string& group, std::int32_t partition) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", kafka.bootstrap().c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "group.id", group.c_str(), err, sizeof err);
  rd_kafka_t* c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, "events", partition);
  rd_kafka_committed(c, list, 10000);
  std::int64_t offset = list->elems[0].offset;
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_destroy(c);
  return offset;
}

}  // namespace

TEST_CASE("source: spans chain batch to batch and commits are the acknowledged positions") {
  testing::MockKafka kafka;
  kafka.create_topic("events", 2);
  produce(kafka.bootstrap(), "events", 0, 40);
  produce(kafka.bootstrap(), "events", 1, 25);
  testing::TestContext context;
  context.bootstrap = kafka.bootstrap();
  auto source = kafka::test::source(context, {{"topics", std::vector<std::string>{"events"}},
                                               {"group", std::string("g1")}});
  REQUIRE(source->start().is_ok());
  Reader reader(*source);
  REQUIRE(reader.until([&] { return reader.records() == 65; }));
  CHECK(reader.offsets[0].size() == 40);
  CHECK(reader.offsets[1].size() == 25);
  // The first span of a partition read from an unknown start claims nothing; every later
  // one starts where the previous ended.
  std::map<std::int32_t, std::int64_t> last_next;
  for (const auto& b : reader.batches)
    for (const auto& span : b.spans) {
      auto it = last_next.find(span.partition);
      if (it == last_next.end()) CHECK(span.from == -1);
      else CHECK(span.from == it->second);
      last_next[span.partition] = span.next;
    }
  CHECK(last_next[0] == 40);
  CHECK(last_next[1] == 25);

  REQUIRE(source->commit(reader.next_positions()).is_ok());
  CHECK(testing::eventually([&] { return committed(kafka, "g1", 0) == 40; }));
  CHECK(committed(kafka, "g1", 1) == 25);
  REQUIRE(source->stop().is_ok());
}

TEST_CASE("source: records carry their headers (not pipehost.subject), unless headers = false") {
  testing::MockKafka kafka;
  kafka.create_topic("events", 1);
  produce(kafka.bootstrap(), "events", 0, 10);
  for (bool wanted : {true, false}) {
    CAPTURE(wanted);
    testing::TestContext context;
    context.bootstrap = kafka.bootstrap();
    auto source = kafka::test::source(
        context, {{"topics", std::vector<std::string>{"events"}},
                  {"group", std::string(wanted ? "with" : "without")}, {"headers", wanted}});
    REQUIRE(source->start().is_ok());
    Reader reader(*source);
    REQUIRE(reader.until([&] { return reader.records() == 10; }));
    for (const auto& b : reader.batches)
      for (const auto& r : b.records) {
        const std::string value(r.payload.view());
        if (wanted && std::stoi(value) % 2) {
          REQUIRE(r.headers.size() == 1);
          CHECK(r.headers[0].key == "n");
          CHECK(r.headers[0].value == value);
        } else {
          CHECK(r.headers.empty());
        }
      }
    REQUIRE(source->stop().is_ok());
  }
}

// A source of `group` on "events" (1 partition), whose sink says it holds 0@12.
static std::unique_ptr<SourceStage> resumed_at_12(testing::MockKafka& kafka, testing::TestContext& context,
                                                  const std::string& group) {
  context.bootstrap = kafka.bootstrap();
  context.resume_positions["events:0"] = 12;
  return kafka::test::source(context, {{"topics", std::vector<std::string>{"events"}}, {"group", group}});
}

TEST_CASE("source: resumes where the sink says, and the first span starts there") {
  testing::MockKafka kafka;
  kafka.create_topic("events", 1);
  produce(kafka.bootstrap(), "events", 0, 30);
  testing::TestContext context;
  auto source = resumed_at_12(kafka, context, "g2");
  REQUIRE(source->start().is_ok());
  Reader reader(*source);
  REQUIRE(reader.until([&] { return reader.records() == 18; }));
  CHECK(reader.offsets[0].front() == 12);
  CHECK(reader.batches.front().spans.front().from == 12);
  // What the sink holds is committed to the group too.
  CHECK(testing::eventually([&] { return committed(kafka, "g2", 0) == 12; }));
  REQUIRE(source->stop().is_ok());
}

// The check that a sink's stored position is not behind the group's offset runs at the
// poll after the one that assigned the partition; the batch that poll returned may be
// written and committed by then. The group's offset is then this member's own: it said
// the sink's store was restored from a backup, on most runs with two tasks or more.
TEST_CASE("source: its own commit since the resume is not taken for a sink behind the group") {
  testing::MockKafka kafka;
  kafka.create_topic("events", 1);
  produce(kafka.bootstrap(), "events", 0, 30);
  testing::TestContext context;
  auto source = resumed_at_12(kafka, context, "g-own");
  REQUIRE(source->start().is_ok());
  Reader reader(*source);
  auto assigned = [&] {
    return std::any_of(context.logs.begin(), context.logs.end(),
                       [](const std::string& l) { return l.find("assigned events/0@12") != std::string::npos; });
  };
  REQUIRE(reader.until(assigned));
  REQUIRE(source->commit({{"events", 0, 20}}).is_ok());  // the first batch, written
  REQUIRE(testing::eventually([&] { return committed(kafka, "g-own", 0) == 20; }));
  reader.poll_once();
  for (const auto& l : context.logs) CHECK_MESSAGE(l.find("behind the group's committed offset") == std::string::npos, l);
  REQUIRE(source->stop().is_ok());
}

// And a group offset past the sink's (its store restored from a backup, or the records
// held under another name) is said, once the partition is assigned.
TEST_CASE("source: a sink's stored position behind the group's offset is said at the resume") {
  testing::MockKafka kafka;
  kafka.create_topic("events", 1);
  produce(kafka.bootstrap(), "events", 0, 30);
  const std::map<std::string, OptionValue> options{{"topics", std::vector<std::string>{"events"}},
                                                   {"group", std::string("g-behind")}};
  {
    testing::TestContext earlier;
    earlier.bootstrap = kafka.bootstrap();
    auto source = kafka::test::source(earlier, options);
    REQUIRE(source->start().is_ok());
    Reader reader(*source);
    REQUIRE(reader.until([&] { return reader.records() == 30; }));
    REQUIRE(source->commit({{"events", 0, 25}}).is_ok());
    REQUIRE(testing::eventually([&] { return committed(kafka, "g-behind", 0) == 25; }));
    REQUIRE(source->stop().is_ok());
  }
  testing::TestContext context;
  auto source = resumed_at_12(kafka, context, "g-behind");
  REQUIRE(source->start().is_ok());
  Reader reader(*source);
  auto said = [&] {
    return std::any_of(context.logs.begin(), context.logs.end(), [](const std::string& l) {
      return l.find("stored position of events/0 is 12, behind the group's committed offset 25") != std::string::npos;
    });
  };
  CHECK(reader.until(said));
  CHECK(reader.offsets[0].front() == 12);  // read again from the sink's position
  REQUIRE(source->stop().is_ok());
}

TEST_CASE("source: from a position the broker deleted, start = latest counts what it jumps over as lost") {
  // The mock cluster keeps ~5 MiB per partition: 2000 records of 4 KiB push the oldest out,
  // and the sink's position 0 is before the log's start. librdkafka resets it by
  // auto.offset.reset: with latest, to the end, past records still on the broker.
  testing::MockKafka kafka;
  kafka.create_topic("events", 1);
  {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", kafka.bootstrap().c_str(), err, sizeof err);
    rd_kafka_t* p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    const std::string big(4096, 'x');
    for (int i = 0; i < 2000; ++i)
      while (rd_kafka_producev(p, RD_KAFKA_V_TOPIC("events"), RD_KAFKA_V_PARTITION(0),
                               RD_KAFKA_V_VALUE(const_cast<char*>(big.data()), big.size()),
                               RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END))
        rd_kafka_poll(p, 10);
    rd_kafka_flush(p, 10000);
    rd_kafka_destroy(p);
  }
  testing::TestContext context;
  context.bootstrap = kafka.bootstrap();
  context.resume_positions["events:0"] = 0;
  auto source = kafka::test::source(context, {{"topics", std::vector<std::string>{"events"}},
                                               {"group", std::string("g-latest")},
                                               {"start", std::string("latest")}});
  REQUIRE(source->start().is_ok());
  Reader reader(*source);
  // A record now and then, until one comes after the reset (the group joins in seconds).
  for (int i = 0; i < 60 && reader.records() == 0; ++i) {
    produce(kafka.bootstrap(), "events", 0, 1, 2000 + i);
    reader.until([&] { return reader.records() > 0; }, std::chrono::milliseconds(500));
  }
  REQUIRE(reader.records() > 0);
  const std::int64_t first = reader.offsets[0].front();
  CHECK(first >= 2000);
  CHECK(context.counter_value("offsets_lost") == static_cast<std::uint64_t>(first));  // deleted, and jumped over
  bool said = false;
  for (const auto& line : context.logs) said = said || line.find("still on the broker, were skipped too") != std::string::npos;
  CHECK(said);
  REQUIRE(source->stop().is_ok());
}

TEST_CASE("source: seek reads a partition again from the given offset") {
  testing::MockKafka kafka;
  kafka.create_topic("events", 1);
  produce(kafka.bootstrap(), "events", 0, 20);
  testing::TestContext context;
  context.bootstrap = kafka.bootstrap();
  auto source = kafka::test::source(context, {{"topics", std::vector<std::string>{"events"}},
                                               {"group", std::string("g3")}});
  REQUIRE(source->start().is_ok());
  Reader reader(*source);
  REQUIRE(reader.until([&] { return reader.records() == 20; }));
  REQUIRE(source->seek({{"events", 0, 5}}).is_ok());
  Reader again(*source);
  REQUIRE(again.until([&] { return again.records() == 15; }));
  CHECK(again.offsets[0].front() == 5);
  CHECK(again.offsets[0].back() == 19);
  CHECK(again.batches.front().spans.front().from == 5);
  REQUIRE(source->stop().is_ok());
}

TEST_CASE("source: paused, it reads nothing but stays in the group; resumed, it goes on") {
  testing::MockKafka kafka;
  kafka.create_topic("events", 1);
  produce(kafka.bootstrap(), "events", 0, 10);
  testing::TestContext context;
  context.bootstrap = kafka.bootstrap();
  auto source = kafka::test::source(context, {{"topics", std::vector<std::string>{"events"}},
                                               {"group", std::string("g4")}});
  REQUIRE(source->start().is_ok());
  Reader reader(*source);
  REQUIRE(reader.until([&] { return reader.records() == 10; }));
  bool keep_polling = false;
  REQUIRE(source->set_paused(true, keep_polling).is_ok());
  CHECK(keep_polling);
  produce(kafka.bootstrap(), "events", 0, 10, 10);
  auto until = Clock::now() + std::chrono::seconds(2);
  reader.until([&] { return Clock::now() > until; });
  CHECK(reader.records() == 10);
  REQUIRE(source->set_paused(false, keep_polling).is_ok());
  REQUIRE(reader.until([&] { return reader.records() == 20; }));
  CHECK(reader.offsets[0][10] == 10);
  REQUIRE(source->stop().is_ok());
}

TEST_CASE("source: stop_at_end ends a consumer that reads nothing (start = latest)") {
  testing::MockKafka kafka;
  kafka.create_topic("events", 2);
  produce(kafka.bootstrap(), "events", 0, 10);
  testing::TestContext context;
  context.bootstrap = kafka.bootstrap();
  auto source = kafka::test::source(context, {{"topics", std::vector<std::string>{"events"}},
                                               {"group", std::string("g5")},
                                               {"start", std::string("latest")},
                                               {"stop_at_end", true}});
  REQUIRE(source->start().is_ok());
  Reader reader(*source);
  reader.until([&] { return reader.ended; });
  CHECK(reader.ended);
  CHECK(reader.records() == 0);
  CHECK(committed(kafka, "g5", 0) == 10);  // its position, though it read no record
  REQUIRE(source->stop().is_ok());
}

TEST_CASE("source: a missing topic is named, with the closest existing one") {
  testing::MockKafka kafka;
  kafka.create_topic("events", 1);
  testing::TestContext context;
  context.bootstrap = kafka.bootstrap();
  auto bounded = kafka::test::source(context, {{"topics", std::vector<std::string>{"event"}},
                                                {"group", std::string("g6")},
                                                {"stop_at_end", true}});
  Status s = bounded->start();
  CHECK(s.code() == Code::fatal);
  CHECK(s.message().find("topic 'event' does not exist (did you mean 'events'?)") != std::string::npos);
  auto unbounded = kafka::test::source(context, {{"topics", std::vector<std::string>{"nothing"}},
                                                  {"group", std::string("g7")}});
  REQUIRE(unbounded->start().is_ok());
  bool warned = false;
  for (const auto& line : context.logs) warned = warned || line.find("'nothing' does not exist") != std::string::npos;
  CHECK(warned);
}

// Members of one group closing together, each close meeting the rebalance the others'
// leaving started: librdkafka 2.0.2 calls the rebalance callback from inside
// rd_kafka_consumer_close, where asking rd_kafka_rebalance_protocol() could wait forever
// for the group thread (a CI hang) or return NULL. Eager and cooperative groups.
TEST_CASE("source: members of a group stopping together each close promptly") {
  for (const char* strategy : {"roundrobin", "cooperative-sticky"}) {
    for (int round = 0; round < 2; ++round) {
      CAPTURE(strategy);
      CAPTURE(round);
      testing::MockKafka kafka;
      kafka.create_topic("events", 3);
      for (std::int32_t p = 0; p < 3; ++p) produce(kafka.bootstrap(), "events", p, 20);
      const std::string group = std::string("g-close-") + strategy + std::to_string(round);
      std::vector<std::unique_ptr<testing::TestContext>> contexts;
      std::vector<std::unique_ptr<SourceStage>> sources;
      for (int member = 0; member < 3; ++member) {
        auto& context = *contexts.emplace_back(std::make_unique<testing::TestContext>());
        context.bootstrap = kafka.bootstrap();
        context.pipeline_name = "member" + std::to_string(member);  // its own task link
        sources.push_back(kafka::test::source(
            context, {{"topics", std::vector<std::string>{"events"}},
                      {"group", group},
                      {"properties", StringMap{{"partition.assignment.strategy", strategy}}}}));
        REQUIRE(sources.back()->start().is_ok());
      }
      std::vector<Reader> readers;
      for (auto& s : sources) readers.emplace_back(*s);
      auto total = [&] {
        std::size_t n = 0;
        for (auto& r : readers) n += r.records();
        return n;
      };
      auto deadline = Clock::now() + std::chrono::seconds(30);
      while (total() < 60 && Clock::now() < deadline)
        for (auto& r : readers) r.poll_once();
      REQUIRE(total() >= 60);
      // The first leaves; the others stop while the group rebalances for it, before they
      // poll again (as tasks draining at the end of a bounded run do).
      for (std::size_t member = 0; member < sources.size(); ++member)
        CHECK(sources[member]->commit(readers[member].next_positions()).is_ok());
      REQUIRE(sources[0]->stop().is_ok());
      std::this_thread::sleep_for(std::chrono::milliseconds(100 * round));
      std::vector<std::future<Status>> stops;
      for (std::size_t member = 1; member < sources.size(); ++member)
        stops.push_back(std::async(std::launch::async, [&s = sources[member]] { return s->stop(); }));
      for (auto& stop : stops) {
        if (stop.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
          MESSAGE("a member's stop() did not return within 30 s (" << strategy << ")");
          std::_Exit(1);  // its thread is stuck inside librdkafka: no clean exit possible
        }
        CHECK(stop.get().is_ok());
      }
    }
  }
}

// A batch still in flight when the host's wait at a revoke ended may be acknowledged after
// its partition came back; the group's offset has moved on meanwhile (its other owner
// committed), and the late position must not move it back.
TEST_CASE("source: a position acknowledged after its partition was revoked and came back does not move the offset back") {
  testing::MockKafka kafka;
  kafka.create_topic("events", 2);
  for (std::int32_t p = 0; p < 2; ++p) produce(kafka.bootstrap(), "events", p, 20);
  const std::map<std::string, OptionValue> options{{"topics", std::vector<std::string>{"events"}},
                                                   {"group", std::string("g-late")}};
  testing::TestContext first_context, second_context;
  first_context.bootstrap = second_context.bootstrap = kafka.bootstrap();
  first_context.pipeline_name = "first";
  second_context.pipeline_name = "second";  // its own task link
  auto first = kafka::test::source(first_context, options);
  REQUIRE(first->start().is_ok());
  Reader a(*first);
  REQUIRE(a.until([&] { return a.records() == 40; }));  // both partitions, nothing acknowledged

  // A second member takes one partition, reads it and commits its end; then it leaves and
  // the partition comes back to the first.
  auto second = kafka::test::source(second_context, options);
  REQUIRE(second->start().is_ok());
  Reader b(*second);
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while (b.records() < 20 && Clock::now() < deadline) {
    a.poll_once();
    b.poll_once();
  }
  REQUIRE(b.records() == 20);
  REQUIRE(b.offsets.size() == 1);
  const std::int32_t moved = b.offsets.begin()->first, kept = 1 - moved;
  REQUIRE(second->commit(b.next_positions()).is_ok());
  CHECK(testing::eventually([&] { return committed(kafka, "g-late", moved) == 20; }));
  // kept was never committed: each assignment of it reads it again from its start. Its
  // last record read once more shows the first member had it back (a position of a
  // partition acknowledged before any event of its new assignment is not committed: see
  // KafkaSource::accept; waiting only for moved's record let the test race that).
  auto lasts_of_kept = [&] { return std::count(a.offsets[kept].begin(), a.offsets[kept].end(), 19); };
  REQUIRE(a.until([&] { return lasts_of_kept() >= 2 && a.offsets[kept].back() == 19; }));  // read since the join
  const auto kept_lasts = lasts_of_kept();
  REQUIRE(second->stop().is_ok());
  produce(kafka.bootstrap(), "events", moved, 1, 20);
  const std::size_t before = a.offsets[moved].size();
  REQUIRE(a.until([&] { return a.offsets[moved].size() == before + 1 && lasts_of_kept() == kept_lasts + 1; }));
  CHECK(a.offsets[moved].back() == 20);

  // The first member's sink now acknowledges what it read of `moved` before the revoke
  // (up to offset 10), with the kept partition's end, in one commit.
  REQUIRE(first->commit({{"events", moved, 10}, {"events", kept, 20}}).is_ok());
  CHECK(testing::eventually([&] { return committed(kafka, "g-late", kept) == 20; }));
  CHECK(committed(kafka, "g-late", moved) == 20);
  // What it read since the partition came back is committed as usual.
  REQUIRE(first->commit({{"events", moved, 21}}).is_ok());
  CHECK(testing::eventually([&] { return committed(kafka, "g-late", moved) == 21; }));
  REQUIRE(first->stop().is_ok());
}

// librdkafka 2.0.2 stops fetching while the queue is past queued.max.messages.kbytes and
// looks again only when its broker thread wakes (else after a second): the source wakes it
// whenever its queue runs dry with records still on the broker (how often depends on the
// mock broker's fetch sizes; the speed-up is measured on the real broker, bench/NOTES.md),
// and never once caught up.
TEST_CASE("source: with a tiny queue every record comes in order, and a caught-up source asks nothing") {
  testing::MockKafka kafka;
  kafka.create_topic("events", 1);
  produce(kafka.bootstrap(), "events", 0, 3000);
  testing::TestContext context;
  context.bootstrap = kafka.bootstrap();
  auto source = kafka::test::source(
      context, {{"topics", std::vector<std::string>{"events"}},
                {"group", std::string("g-wake")},
                {"properties", StringMap{{"queued.max.messages.kbytes", "1"},
                                         {"queued.min.messages", "10"},
                                         {"max.partition.fetch.bytes", "1024"}}}});
  REQUIRE(source->start().is_ok());
  Reader reader(*source);
  REQUIRE(reader.until([&] { return reader.records() == 3000; }, std::chrono::seconds(120)));
  for (std::size_t i = 0; i < reader.offsets[0].size(); ++i)
    REQUIRE(reader.offsets[0][i] == static_cast<std::int64_t>(i));
  // Right after a backlog one more wake may go out before the end-of-partition event
  // arrives; 2.5 s later (past the backlog window, the end seen) polls ask nothing.
  const auto settle = Clock::now() + std::chrono::milliseconds(2500);
  reader.until([&] { return Clock::now() > settle; });
  const std::uint64_t wakes = context.counter_value("fetcher_wakes");
  // Caught up: polls that find nothing do not ask the broker anything.
  for (int i = 0; i < 10; ++i) reader.poll_once();
  CHECK(context.counter_value("fetcher_wakes") == wakes);
  REQUIRE(source->stop().is_ok());
}
