// Task: one worker carrying batches from a scripted source through transforms to a
// scripted sink, and committing only what is acknowledged. No broker: the stages are
// test components declared like a plugin's.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <set>
#include <mutex>
#include <utility>

#include "runtime/pipeline.hpp"
#include "runtime/task.hpp"

using namespace pipehost;
using namespace pipehost::host;

namespace {

// What a test scripts and observes; one at a time (tests run sequentially).
struct Script {
  std::mutex mutex;
  // The source: a log of offsets per partition of topic "t", read in batches.
  std::map<std::int32_t, std::int64_t> log_end;  // partition -> offsets 0..end-1
  std::map<std::int32_t, std::int64_t> cursor;   // next offset to read
  std::size_t per_poll = 4;
  std::vector<std::vector<Position>> commits;
  std::vector<std::vector<Position>> seeks;
  // The transform: offsets to drop and to reject.
  std::vector<std::int64_t> drop, reject_in_transform;
  // The sink.
  std::vector<std::int64_t> reject_in_prepare, reject_in_write;
  std::vector<std::int64_t> written;              // offsets the sink wrote, in order
  std::map<std::int32_t, std::int64_t> stored;    // positions the sink keeps
  bool store_positions = false;
  std::int64_t rewind_at = -1;  // a batch starting here finds the store gone back ...
  std::int64_t lose_to = -1;    // ... to this position: PositionMismatch, once
  std::int64_t unknown_from = -1;  // a span starting here has from = -1 (start unknown)
  bool done_retriable = false;
  // Refused by the store after write returned (a broker's delivery report): the batch's
  // done says rewind, and the sink rejects the offset in prepare from then on.
  std::vector<std::int64_t> refuse_after_write;
  std::vector<std::int64_t> read_again_from;  // where each such rewind read the partition again
  int commits_before_seek = -1;               // commits made before the first seek
  bool done_twice = false;
  bool async = false;                             // done later, newest batch first
  Millis async_delay{0};                          // ... and no sooner than this after write
  struct Pending {
    BatchDone done;
    Status status;
    std::chrono::steady_clock::time_point written;
  };
  std::vector<Pending> pending;
  // The source takes the acknowledged positions within this poll (as a rebalance
  // revoking its partitions does), noting how far it had read.
  int revoke_at_poll = -1;
  int polls = 0;
  std::vector<Position> taken_at_revoke;
  std::int64_t read_at_revoke = -1;
  int fatal_at_batch = -1;
  int retriable_after_reading_at_poll = -1;  // this poll reads its records, then fails retriably
  int transform_start_failures = 0;  // the transform's start fails retriably this many times
  bool sink_start_fatal = false;
  int source_stops = 0, transform_stops = 0, sink_stops = 0;
  int batches = 0;
  // The source asks where each partition resumes in its first poll (as an assignment does),
  // and the sink cannot tell.
  bool resume_in_first_poll = false;
  bool stored_position_fails = false;
  std::vector<std::optional<std::int64_t>> resumed;  // what each of those asks answered

  std::int64_t last_commit(std::int32_t partition) {
    std::lock_guard lock(mutex);
    std::int64_t out = -1;
    for (const auto& c : commits)
      for (const auto& p : c)
        if (p.partition == partition) out = p.next_offset;
    return out;
  }
};
Script* script = nullptr;
const std::string_view kTopic = "t";

bool in(const std::vector<std::int64_t>& v, std::int64_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

class LogSource final : public Source {
 public:
  using Config = NoOptions;
  LogSource(const Config&, Context& context) : context_(context) {}
  PollResult poll(Batch& out, Millis) override {
    if (script->polls++ == script->revoke_at_poll) {  // not under the mutex: the sink's acks need it
      script->read_at_revoke = script->cursor[0];
      script->taken_at_revoke = context_.take_acknowledged();
    }
    if (std::exchange(script->resume_in_first_poll, false))
      for (const auto& [partition, end] : script->log_end)
        script->resumed.push_back(context_.resume_position(kTopic, partition));
    std::lock_guard lock(script->mutex);
    bool more = false;
    for (auto& [partition, end] : script->log_end) {
      std::int64_t& next = script->cursor[partition];
      if (next >= end) continue;
      Span span{kTopic, partition, next == script->unknown_from ? -1 : next, next};
      for (std::size_t n = 0; n < script->per_poll && next < end; ++n, ++next) {
        Record& r = out.records.emplace_back();
        r.origin = {kTopic, partition, next};
        r.payload = std::to_string(next);
      }
      span.next = next;
      out.spans.push_back(span);
      more = more || next < end;
    }
    if (script->polls - 1 == script->retriable_after_reading_at_poll && !out.records.empty())
      throw RetriableError("the broker went away after these were read");
    return more || !out.records.empty() ? PollResult::more : PollResult::end;
  }
  void commit(const std::vector<Position>& positions) override {
    std::lock_guard lock(script->mutex);
    script->commits.push_back(positions);
  }
  void stop() override { ++script->source_stops; }
  void seek(const std::vector<Position>& positions) override {
    std::lock_guard lock(script->mutex);
    script->seeks.push_back(positions);
    for (const auto& p : positions) script->cursor[p.partition] = p.next_offset;
    for (const auto& p : positions) script->read_again_from.push_back(p.next_offset);
    if (script->commits_before_seek < 0) script->commits_before_seek = static_cast<int>(script->commits.size());
  }

 private:
  Context& context_;
};

class ScriptedTransform final : public Transform {
 public:
  using Config = NoOptions;
  ScriptedTransform(const Config&, Context&) {}
  void start() override {
    if (script->transform_start_failures > 0) {
      --script->transform_start_failures;
      throw RetriableError("the registry is not up yet");
    }
  }
  void stop() override { ++script->transform_stops; }
  void process(Batch& batch) override {
    for (std::size_t i = 0; i < batch.records.size(); ++i) {
      std::int64_t offset = batch.records[i].origin.offset;
      if (in(script->drop, offset)) batch.drop(i);
      else if (in(script->reject_in_transform, offset)) batch.reject(i, "transform says no");
    }
  }
};

class ScriptedSink final : public Sink {
 public:
  using Config = NoOptions;
  ScriptedSink(const Config&, Context&) {}
  void start() override {
    if (script->sink_start_fatal) throw FatalError("the database is not there");
  }
  void stop() override { ++script->sink_stops; }
  void prepare(Batch& batch) override {
    for (std::size_t i = 0; i < batch.records.size(); ++i)
      if (in(script->reject_in_prepare, batch.records[i].origin.offset))
        batch.reject(i, "sink cannot take it");
  }
  void write(Batch& batch, BatchDone done) override {
    std::lock_guard lock(script->mutex);
    if (script->batches++ == script->fatal_at_batch) throw FatalError("sink broke");
    if (!batch.records.empty() && batch.records.front().origin.offset == script->rewind_at) {
      script->rewind_at = -1;
      for (auto& [p, stored] : script->stored) stored = std::min(stored, script->lose_to);
      throw PositionMismatch("store lost writes");
    }
    Status status = script->done_retriable ? Status::retriable("try again") : Status::ok();
    for (std::size_t i = 0; i < batch.records.size(); ++i) {
      std::int64_t offset = batch.records[i].origin.offset;
      if (in(script->reject_in_write, offset)) {
        batch.reject(i, "refused while writing");
      } else if (in(script->refuse_after_write, offset)) {
        script->reject_in_prepare.push_back(offset);
        status = Status::rewind("the store refused " + std::to_string(offset));
      } else {
        script->written.push_back(offset);
      }
    }
    if (script->store_positions)
      for (const auto& s : batch.spans) script->stored[s.partition] = s.next;
    if (script->async) script->pending.push_back({std::move(done), status, std::chrono::steady_clock::now()});
    else done(status);
    if (script->done_twice && !script->async) done(Status::ok());
  }
  std::optional<std::int64_t> stored_position(std::string_view, std::int32_t partition) override {
    std::lock_guard lock(script->mutex);
    if (script->stored_position_fails) throw FatalError("the positions table is gone");
    if (!script->store_positions) return std::nullopt;
    auto it = script->stored.find(partition);
    if (it == script->stored.end()) return std::nullopt;
    return it->second;
  }
  void forget_position(std::string_view, std::int32_t partition) override {
    std::lock_guard lock(script->mutex);
    script->stored.erase(partition);
  }
};

struct Fixture {
  Script s;
  PluginSpec plugin{"test", "1", "test stages"};
  PipelineConfig config;
  Services services;

  Fixture() {
    script = &s;
    plugin.add_source<LogSource>("log", "", {});
    plugin.add_transform<ScriptedTransform>("scripted", "", {});
    plugin.add_sink<ScriptedSink>("scripted", "", {});
    config.name = "p";
    config.batch_size = 4;
    config.commit_interval_ms = 0;
    config.source = {"source", "log", {}, nullptr, {}, &plugin.components[0]};
    config.transforms.push_back({"transforms[0]", "scripted", {}, nullptr, {}, &plugin.components[1]});
    config.sink = {"sink", "scripted", {}, nullptr, {}, &plugin.components[2]};
  }
  ~Fixture() { script = nullptr; }

  // Runs one task until the source ends or the pipeline fails; returns the failure.
  std::string run() {
    PipelineState state(config);
    std::thread settle;
    std::atomic<bool> running{true};
    if (s.async)  // completes pending batches newest first, as an out-of-order sink would
      settle = std::thread([&] {
        while (running) {
          std::vector<Script::Pending> now;
          {
            std::lock_guard lock(s.mutex);
            auto due = std::chrono::steady_clock::now() - s.async_delay;
            auto first_later = std::find_if(s.pending.begin(), s.pending.end(),
                                            [&](const auto& p) { return p.written > due; });
            now.assign(std::make_move_iterator(s.pending.begin()), std::make_move_iterator(first_later));
            s.pending.erase(s.pending.begin(), first_later);
          }
          for (auto it = now.rbegin(); it != now.rend(); ++it) it->done(it->status);
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
      });
    {
      Task task(config, services, state, 0);
      task.run();
    }
    running = false;
    if (settle.joinable()) settle.join();
    return state.failure_message();
  }
};

}  // namespace

TEST_CASE("task: everything read is written once and committed to the end") {
  Fixture f;
  f.s.log_end = {{0, 10}, {1, 7}};
  CHECK(f.run().empty());
  CHECK(f.s.written.size() == 17);
  CHECK(f.s.last_commit(0) == 10);
  CHECK(f.s.last_commit(1) == 7);
}

TEST_CASE("task: records a source took before a retriable error are delivered, not dropped") {
  Fixture f;
  f.s.log_end = {{0, 10}};
  f.s.retriable_after_reading_at_poll = 1;
  CHECK(f.run().empty());
  std::vector<std::int64_t> expected(10);
  for (std::int64_t i = 0; i < 10; ++i) expected[static_cast<std::size_t>(i)] = i;
  CHECK(f.s.written == expected);
  CHECK(f.s.last_commit(0) == 10);
}

TEST_CASE("task: a stage whose start fails retriably is started again; only started stages are stopped") {
  {
    Fixture f;
    f.s.log_end = {{0, 3}};
    f.s.transform_start_failures = 2;  // was: the pipeline failed at once
    CHECK(f.run().empty());
    CHECK(f.s.written.size() == 3);
    CHECK(f.s.source_stops == 1);
    CHECK(f.s.transform_stops == 1);
    CHECK(f.s.sink_stops == 1);
  }
  {
    Fixture f;
    f.s.log_end = {{0, 3}};
    f.s.sink_start_fatal = true;
    CHECK(f.run().find("the database is not there") != std::string::npos);
    // Neither the sink whose start failed nor the stages after it, never started, are stopped.
    CHECK(f.s.sink_stops == 0);
    CHECK(f.s.transform_stops == 0);
    CHECK(f.s.source_stops == 0);
  }
}

TEST_CASE("task: a batch emptied by transforms still reaches the sink and is committed") {
  Fixture f;
  f.s.log_end = {{0, 8}};
  f.s.drop = {0, 1, 2, 3, 4, 5, 6, 7};
  f.s.store_positions = true;
  CHECK(f.run().empty());
  CHECK(f.s.written.empty());
  CHECK(f.s.stored[0] == 8);  // the sink stored the spans' ends, records or not
  CHECK(f.s.last_commit(0) == 8);
}

TEST_CASE("task: rejections under skip are committed past; under fail nothing past them is") {
  SUBCASE("skip") {
    Fixture f;
    f.s.log_end = {{0, 8}};
    f.config.on_error = ErrorPolicy::skip;
    f.s.reject_in_transform = {1};
    f.s.reject_in_prepare = {5};
    f.s.reject_in_write = {6};
    CHECK(f.run().empty());
    CHECK(f.s.written == std::vector<std::int64_t>{0, 2, 3, 4, 7});
    CHECK(f.s.last_commit(0) == 8);
  }
  SUBCASE("fail, rejected before the sink wrote: the sink stored nothing past it") {
    Fixture f;
    f.s.log_end = {{0, 8}};
    f.s.store_positions = true;
    f.s.reject_in_prepare = {5};
    std::string failure = f.run();
    CHECK(failure.find("record t/0@5 rejected: sink cannot take it") != std::string::npos);
    CHECK(f.s.written == std::vector<std::int64_t>{0, 1, 2, 3});
    CHECK(f.s.stored[0] == 4);  // a restart reads offset 5 again
    CHECK(f.s.last_commit(0) == 4);
  }
  SUBCASE("fail, rejected while writing: not committed") {
    Fixture f;
    f.s.log_end = {{0, 8}};
    f.s.reject_in_write = {6};
    CHECK_FALSE(f.run().empty());
    CHECK(f.s.last_commit(0) == 4);
  }
}

TEST_CASE("task: acknowledgements out of order across partitions commit only the prefix") {
  Fixture f;
  f.s.log_end = {{0, 40}, {1, 40}};
  f.s.async = true;
  CHECK(f.run().empty());
  CHECK(f.s.written.size() == 80);
  CHECK(f.s.last_commit(0) == 40);
  CHECK(f.s.last_commit(1) == 40);
  // Every commit is a prefix: positions never go back, whatever order batches completed in.
  std::map<std::int32_t, std::int64_t> seen;
  for (const auto& c : f.s.commits)
    for (const auto& p : c) {
      CHECK(p.next_offset >= seen[p.partition]);
      seen[p.partition] = p.next_offset;
    }
}

TEST_CASE("task: done(rewind) reads again from the refused batch once every batch in flight settled") {
  // An asynchronous sink learns of refused records after write returned; later batches
  // are in flight meanwhile and complete first (newest first here). Nothing past the
  // refused record may be committed before it is rejected, and nothing may be skipped.
  Fixture f;
  f.config.on_error = ErrorPolicy::skip;
  f.s.log_end = {{0, 40}};
  f.s.async = true;
  f.s.async_delay = Millis(20);
  f.config.max_in_flight_records = 1000;
  f.s.refuse_after_write = {13, 30};
  CHECK(f.run().empty());
  CHECK(f.s.written.size() > 38);  // batches written after a refused one are written again
  std::set<std::int64_t> written(f.s.written.begin(), f.s.written.end());
  for (std::int64_t i = 0; i < 40; ++i) CHECK(written.count(i) == (i == 13 || i == 30 ? 0u : 1u));
  CHECK(f.s.last_commit(0) == 40);
  // From the refused record's batch (12..15); 30's batch, in flight then or later, is
  // read again by the same rewind or its own.
  REQUIRE_FALSE(f.s.read_again_from.empty());
  CHECK(f.s.read_again_from[0] == 12);
  std::int64_t seen = 0;
  for (std::size_t i = 0; i < f.s.commits.size(); ++i)
    for (const auto& p : f.s.commits[i]) {
      CHECK(p.next_offset >= seen);
      seen = p.next_offset;
      if (static_cast<int>(i) < f.s.commits_before_seek) CHECK(p.next_offset <= 12);  // not past 13 unread
    }
}

TEST_CASE("task: a sink failure abandons the batch and nothing after it is committed") {
  Fixture f;
  f.s.log_end = {{0, 20}};
  f.s.fatal_at_batch = 2;
  std::string failure = f.run();
  CHECK(failure.find("sink broke") != std::string::npos);
  CHECK(f.s.last_commit(0) == 8);
}

TEST_CASE("task: done(retriable) is a usage error that stops the pipeline and says why") {
  Fixture f;
  f.s.log_end = {{0, 4}};
  f.s.done_retriable = true;
  std::string failure = f.run();
  CHECK(failure.find("retriable error through done") != std::string::npos);
  CHECK(f.s.last_commit(0) == -1);
}

TEST_CASE("task: a sink calling done twice for a batch stops the pipeline before anything is committed") {
  Fixture f;
  f.s.log_end = {{0, 4}};
  f.s.done_twice = true;
  std::string failure = f.run();
  CHECK(failure.find("called done twice for one batch") != std::string::npos);
  CHECK(f.s.last_commit(0) == -1);
}

TEST_CASE("task: a rewind with nothing stored reads a first batch again from where it began") {
  // The partition's first read from an unknown start (span.from = -1) and a sink with no
  // position yet (it refused the batch to have it read again): the source is sent back
  // to the batch's first record as polled, though a transform dropped that record.
  Fixture f;
  f.s.log_end = {{0, 20}};
  f.s.cursor = {{0, 5}};
  f.s.unknown_from = 5;
  f.s.drop = {5};
  f.s.store_positions = true;
  f.s.rewind_at = 6;
  CHECK(f.run().empty());
  REQUIRE(f.s.seeks.size() == 1);
  CHECK(f.s.seeks[0].at(0).next_offset == 5);
  std::vector<std::int64_t> expected;
  for (std::int64_t o = 6; o < 20; ++o) expected.push_back(o);
  CHECK(f.s.written == expected);
  CHECK(f.s.stored[0] == 20);
  CHECK(f.s.last_commit(0) == 20);
}

TEST_CASE("task: a sink that cannot tell where a partition resumes stops the pipeline, delivering nothing") {
  Fixture f;
  f.s.log_end = {{0, 8}};
  f.s.store_positions = true;
  f.s.resume_in_first_poll = true;
  f.s.stored_position_fails = true;
  const std::string failure = f.run();
  CHECK(failure.find("cannot tell the stored position of t/0, where that partition must resume: "
                     "the positions table is gone") != std::string::npos);
  CHECK(f.s.written.empty());  // the first poll read from where the sink did not say
  CHECK(f.s.commits.empty());
}

// The embedded broker's log is new in every process: a sink's stored position is trusted
// only once this process resumed from that very store (sink definition) before.
TEST_CASE("task: on the embedded broker, a store first resumed from in this process is an earlier run's") {
  Fixture f;
  f.services.kafka_embedded = true;
  f.s.log_end = {{0, 8}};
  f.s.store_positions = true;
  f.s.stored = {{0, 100}};  // an earlier process's log
  auto run_with = [&](const std::string& store, std::int64_t timeout = 1) {
    f.config.sink.options.values["store"] = store;
    f.config.sink.options.values["timeout"] = timeout;
    f.s.resume_in_first_poll = true;
    f.s.cursor.clear();
    f.s.resumed.clear();
    CHECK(f.run().empty());
    REQUIRE(f.s.resumed.size() == 1);
    return f.s.resumed[0];
  };
  CHECK(run_with("A") == std::nullopt);  // dropped: read from the start
  CHECK(f.s.stored.at(0) == 8);
  CHECK(run_with("A") == std::optional<std::int64_t>(8));  // this process's: trusted
  // A reload changed an option of the sink, not its store: the position is where this
  // process last acknowledged the partition, so it is trusted (dropping it re-read the
  // records between the group's offset and it, counted twice).
  CHECK(run_with("A", 5) == std::optional<std::int64_t>(8));
  const auto store_a = f.s.stored;
  // A reload pointed the sink at another store, which holds an earlier process's position.
  f.s.stored = {{0, 100}};
  CHECK(run_with("B") == std::nullopt);
  CHECK(f.s.stored.at(0) == 8);
  f.s.log_end = {{0, 12}};
  CHECK(run_with("B") == std::optional<std::int64_t>(8));
  CHECK(f.s.stored.at(0) == 12);
  // ... and back to the first store, which this process wrote to 8: trusted, though 12 was
  // acknowledged last (dropping it re-read 0..8 into that store: counted twice).
  f.s.stored = store_a;
  CHECK(run_with("A", 5) == std::optional<std::int64_t>(8));
  CHECK(f.s.stored.at(0) == 12);
}

TEST_CASE("task: a sink whose store lost writes rewinds the source and nothing is skipped") {
  Fixture f;
  f.s.log_end = {{0, 20}};
  f.s.store_positions = true;
  f.s.rewind_at = 12;  // after writing up to 12, the store goes back to 6
  f.s.lose_to = 6;
  CHECK(f.run().empty());
  REQUIRE(f.s.seeks.size() == 1);
  CHECK(f.s.seeks[0].at(0).next_offset == 6);
  // 0..11 written, then the batch from 12 refused; 6..19 written again after the seek.
  std::vector<std::int64_t> expected;
  for (std::int64_t o = 0; o < 12; ++o) expected.push_back(o);
  for (std::int64_t o = 6; o < 20; ++o) expected.push_back(o);
  CHECK(f.s.written == expected);
  CHECK(f.s.stored[0] == 20);
  CHECK(f.s.last_commit(0) == 20);
}

TEST_CASE("task: a source losing its partitions gets what was in flight, once the sink confirms it") {
  // An asynchronous sink (as the kafka sink's delivery reports) confirms each batch 150 ms
  // after writing it; the source takes the acknowledged positions in its sixth poll, as a
  // rebalance revoking its partitions does. It gets everything read before that poll, so
  // the next owner would not read any of it again.
  Fixture f;
  f.s.log_end = {{0, 40}};
  f.s.async = true;
  f.s.async_delay = Millis(150);
  f.s.revoke_at_poll = 5;
  f.config.max_in_flight_records = 1000;
  CHECK(f.run().empty());
  CHECK(f.s.read_at_revoke == 20);
  REQUIRE(f.s.taken_at_revoke.size() == 1);
  CHECK(f.s.taken_at_revoke[0].next_offset == 20);
  CHECK(f.s.last_commit(0) == 40);
}
