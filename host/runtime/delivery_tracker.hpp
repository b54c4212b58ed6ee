// Acknowledgement bookkeeping for one task. Batches are registered in the order the
// source read them; a batch completes when the sink has confirmed it and the task has
// dealt with its rejected records. Only the completed prefix is committable, so a
// committed position never passes a record that is not yet acknowledged.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "pipehost/stage.hpp"
#include "runtime/latency.hpp"

namespace pipehost::host {

class DeliveryTracker {
 public:
  struct Drained {
    std::vector<Position> positions;  // latest committable next offset per partition
    std::uint64_t records = 0;
    // The batch that stopped the drain because it did not complete ok: nothing after it
    // is ever committed. Code::cancelled when the task gave it up (stopping).
    std::optional<Status> error;
  };

  // Acknowledged records' latency goes to `latency` (may be null).
  explicit DeliveryTracker(LatencyHistogram* latency = nullptr) : latency_(latency) {}

  // `parts` is how many completions the batch needs before it is acknowledged;
  // `timestamps_ms` are the batch's record timestamps, for the latency histogram;
  // `starts` the offset of its first record per partition, where a rewind reads again.
  std::uint64_t begin(std::vector<Position> positions, std::uint64_t records, std::uint64_t bytes,
                      int parts, std::vector<std::int64_t> timestamps_ms = {},
                      std::vector<Position> starts = {});
  // One part of the batch is done with this status (any thread).
  void complete(std::uint64_t sequence, const Status& status);
  // The task gave the batch up (failure elsewhere, or stopping): every part left completes
  // as cancelled, so nothing after it is committed and draining does not wait for it.
  void abandon(std::uint64_t sequence);
  // The batch is read again from earlier positions (a sink's rewind): it completes
  // without positions or records, and does not block the batches after it.
  void discard(std::uint64_t sequence);
  // The sink called a batch's done a second time: it may have said "durable" before it
  // was. Every drain from now on stops with a fatal error, so nothing more is committed.
  void done_called_twice();
  Drained drain();

  struct Rewound {
    std::vector<Position> positions;  // where each partition of the batches left is read again
    std::optional<Status> error;      // a batch left that failed otherwise: the pipeline stops
  };
  // A sink's done asked for a rewind (Code::rewind, at the front: drain stopped there).
  // Once every batch is complete (wait_all): forgets them all, and says where to read
  // again, per partition the start of the first of them that read it.
  Rewound rewind();

  // Waits until the in-flight records and bytes are under the limits, or the timeout.
  bool wait_for_room(std::uint64_t max_records, std::uint64_t max_bytes, Millis timeout);
  // Waits until every registered batch is complete, or the timeout.
  bool wait_all(Millis timeout);
  std::uint64_t in_flight_records() const;
  std::uint64_t in_flight_bytes() const;

 private:
  struct Entry {
    std::uint64_t sequence;
    std::vector<Position> positions;
    std::uint64_t records;
    std::uint64_t bytes;
    int parts_left;
    Status status;
    std::vector<std::int64_t> timestamps_ms;
    std::vector<Position> starts;
  };
  Entry* find(std::uint64_t sequence);  // under the lock; null when already drained
  void finish_part(Entry& e);           // under the lock

  LatencyHistogram* latency_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Entry> entries_;
  std::uint64_t next_sequence_ = 0;
  std::uint64_t in_flight_records_ = 0;
  std::uint64_t in_flight_bytes_ = 0;
  std::optional<Status> misused_;
};

// The next offset per partition a batch covers: its spans' ends.
std::vector<Position> positions_of(const Batch& batch);

}  // namespace pipehost::host
