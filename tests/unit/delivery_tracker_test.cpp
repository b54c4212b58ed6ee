#include <doctest/doctest.h>

#include <chrono>

#include "runtime/delivery_tracker.hpp"
#include "runtime/latency.hpp"

using namespace pipehost;
using namespace pipehost::host;

namespace {
Batch batch_of(std::string_view topic, std::int32_t partition, std::int64_t first, int n) {
  Batch b;
  for (int i = 0; i < n; ++i) {
    Record r;
    r.origin = {topic, partition, first + i};
    b.records.push_back(r);
  }
  b.spans = b.spans_from_records();
  return b;
}
}  // namespace

TEST_CASE("positions_of gives the next offset per partition") {
  Batch b = batch_of("t", 0, 10, 3);
  Batch other = batch_of("t", 1, 5, 2);
  for (auto& r : other.records) b.records.push_back(r);
  b.spans = b.spans_from_records();
  CHECK(b.spans[0].from == -1);  // made from records: no claim about what came before
  auto p = positions_of(b);
  REQUIRE(p.size() == 2);
  CHECK(p[0].next_offset == 13);
  CHECK(p[1].next_offset == 7);
}

TEST_CASE("only the acknowledged prefix is committable, whatever order acks arrive in") {
  DeliveryTracker t;
  auto a = t.begin(positions_of(batch_of("t", 0, 0, 10)), 10, 100, 1);
  auto b = t.begin(positions_of(batch_of("t", 0, 10, 10)), 10, 100, 1);
  auto c = t.begin(positions_of(batch_of("t", 0, 20, 10)), 10, 100, 1);
  t.complete(c, Status::ok());
  t.complete(b, Status::ok());
  CHECK(t.drain().positions.empty());  // a is still in flight: nothing may be committed
  t.complete(a, Status::ok());
  auto d = t.drain();
  REQUIRE(d.positions.size() == 1);
  CHECK(d.positions[0].next_offset == 30);
  CHECK(d.records == 30);
  CHECK(t.in_flight_records() == 0);
}

TEST_CASE("a batch needs all its parts; a failed batch blocks everything after it") {
  DeliveryTracker t;
  auto a = t.begin(positions_of(batch_of("t", 0, 0, 5)), 5, 50, 2);
  auto b = t.begin(positions_of(batch_of("t", 0, 5, 5)), 5, 50, 1);
  t.complete(a, Status::ok());
  t.complete(b, Status::ok());
  CHECK(t.drain().positions.empty());
  t.complete(a, Status::fatal("delivery failed"));
  auto d = t.drain();
  CHECK(d.positions.empty());
  REQUIRE(d.error);
  CHECK(d.error->message() == "delivery failed");
}

TEST_CASE("room is bounded by records and bytes in flight") {
  DeliveryTracker t;
  auto a = t.begin({}, 100, 1000, 1);
  CHECK_FALSE(t.wait_for_room(100, 1 << 20, Millis(1)));
  CHECK_FALSE(t.wait_for_room(1000, 1000, Millis(1)));
  CHECK(t.wait_for_room(101, 1001, Millis(1)));
  t.complete(a, Status::ok());
  CHECK(t.wait_for_room(100, 1000, Millis(1)));
  CHECK(t.wait_all(Millis(1)));
}

TEST_CASE("an abandoned batch blocks later commits without being an error of the sink") {
  DeliveryTracker t;
  auto a = t.begin(positions_of(batch_of("t", 0, 0, 5)), 5, 50, 2);
  auto b = t.begin(positions_of(batch_of("t", 0, 5, 5)), 5, 50, 2);
  t.complete(a, Status::ok());
  t.abandon(a);
  t.complete(b, Status::ok());
  t.complete(b, Status::ok());
  auto d = t.drain();
  CHECK(d.positions.empty());
  REQUIRE(d.error);
  CHECK(d.error->code() == Code::cancelled);
  CHECK(t.in_flight_records() == 0);
  CHECK(t.wait_all(Millis(1)));
}

TEST_CASE("a discarded (rewound) batch commits nothing and does not block the next ones") {
  DeliveryTracker t;
  auto a = t.begin(positions_of(batch_of("t", 0, 0, 5)), 5, 50, 2);
  auto b = t.begin(positions_of(batch_of("t", 0, 5, 5)), 5, 50, 2);
  t.complete(a, Status::ok());
  t.complete(a, Status::ok());
  t.discard(b);
  auto c = t.begin(positions_of(batch_of("t", 0, 3, 4)), 4, 40, 1);  // read again from 3
  t.complete(c, Status::ok());
  auto d = t.drain();
  CHECK_FALSE(d.error);
  REQUIRE(d.positions.size() == 1);
  CHECK(d.positions[0].next_offset == 7);
  CHECK(d.records == 9);
}

TEST_CASE("rewind: every batch left is forgotten, each partition read again from its earliest start") {
  DeliveryTracker t;
  auto a = t.begin(positions_of(batch_of("t", 0, 0, 5)), 5, 50, 1, {}, {{"t", 0, 0}});
  auto b = t.begin(positions_of(batch_of("t", 0, 5, 5)), 5, 50, 1, {}, {{"t", 0, 5}});
  auto c = t.begin({{"t", 0, 12}, {"t", 1, 3}}, 5, 50, 1, {}, {{"t", 0, 10}, {"t", 1, 1}});
  t.complete(c, Status::ok());
  t.complete(b, Status::rewind("refused"));
  t.complete(a, Status::ok());
  auto d = t.drain();
  REQUIRE(d.error);
  CHECK(d.error->code() == Code::rewind);
  CHECK(d.positions.size() == 1);  // a's
  auto r = t.rewind();
  CHECK_FALSE(r.error);
  REQUIRE(r.positions.size() == 2);
  CHECK(r.positions[0].partition == 0);
  CHECK(r.positions[0].next_offset == 5);  // b's start, not c's
  CHECK(r.positions[1].partition == 1);
  CHECK(r.positions[1].next_offset == 1);
  CHECK(t.in_flight_records() == 0);
  CHECK_FALSE(t.drain().error);
  auto e = t.begin(positions_of(batch_of("t", 0, 5, 3)), 3, 30, 1, {}, {{"t", 0, 5}});
  t.complete(e, Status::fatal("broke"));
  t.begin({}, 1, 1, 1);
  CHECK(t.rewind().error->message() == "broke");  // a failure among them still stops the pipeline
}

TEST_CASE("a batch's bytes count against the byte limit until the batch completes") {
  DeliveryTracker t;
  auto a = t.begin({}, 1, 1000, 1);
  CHECK(t.in_flight_bytes() == 1000);
  CHECK_FALSE(t.wait_for_room(10, 1000, Millis(1)));
  t.complete(a, Status::ok());
  CHECK(t.in_flight_bytes() == 0);
}

TEST_CASE("latency: each acknowledged record counts once, from its own timestamp") {
  LatencyHistogram latency;
  DeliveryTracker t(&latency);
  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  // Runs of equal stamps, a stamp that comes back after another, and records without one.
  std::vector<std::int64_t> stamps{now - 5000, now - 5000, now - 5000, 0,          now - 3000,
                                   now - 3000, now - 5000, -1,         now - 3000};
  auto a = t.begin(positions_of(batch_of("t", 0, 0, 9)), 9, 90, 1, stamps);
  auto failed = t.begin(positions_of(batch_of("t", 0, 9, 2)), 2, 20, 1, {now - 100, now - 100});
  t.complete(a, Status::ok());
  t.complete(failed, Status::fatal("not acknowledged: not counted"));
  CHECK(latency.count() == 7);
  // The acknowledgement comes a little after `now`: allow for it.
  CHECK(latency.count_at_most(2999) == 0);
  CHECK(latency.count_at_most(4500) == 3);
  CHECK(latency.count_at_most(9999) == 7);
}

TEST_CASE("many partitions: a position per partition, in first-seen order, the latest offset of each") {
  // Batches over 2,000 partitions of two topics, interleaved: each merge is a lookup, not
  // a search of the list (quadratic before).
  DeliveryTracker t;
  Batch b;
  for (int round = 0; round < 3; ++round)
    for (std::int32_t p = 0; p < 1000; ++p)
      for (std::string_view topic : {"a", "b"}) {
        Record r;
        r.origin = {topic, p, std::int64_t{round} * 10 + p % 7};
        b.records.push_back(r);
      }
  b.spans = b.spans_from_records();
  REQUIRE(b.spans.size() == 2000);
  CHECK(b.spans[0].topic == "a");
  CHECK(b.spans[1].topic == "b");
  CHECK(b.spans[2 * 999 + 1].partition == 999);
  CHECK(b.spans[2 * 999 + 1].next == 20 + 999 % 7 + 1);
  auto first = t.begin(positions_of(b), b.records.size(), 0, 1, {}, positions_of(b));
  for (auto& s : b.spans) s.next += 100;
  auto second = t.begin(positions_of(b), b.records.size(), 0, 1);
  t.complete(first, Status::ok());
  t.complete(second, Status::ok());
  auto d = t.drain();
  REQUIRE(d.positions.size() == 2000);
  CHECK(d.positions[7].topic == "b");
  CHECK(d.positions[7].partition == 3);
  CHECK(d.positions[7].next_offset == 20 + 3 + 1 + 100);
  CHECK(d.records == 2 * b.records.size());
}
