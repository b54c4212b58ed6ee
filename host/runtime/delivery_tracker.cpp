#include "runtime/delivery_tracker.hpp"

#include <algorithm>
#include <chrono>

namespace pipehost::host {

std::uint64_t DeliveryTracker::begin(std::vector<Position> positions, std::uint64_t records,
                                     std::uint64_t bytes, int parts,
                                     std::vector<std::int64_t> timestamps_ms,
                                     std::vector<Position> starts) {
  std::lock_guard lock(mutex_);
  std::uint64_t sequence = next_sequence_++;
  entries_.push_back({sequence, std::move(positions), records, bytes, parts, Status::ok(),
                      std::move(timestamps_ms), std::move(starts)});
  in_flight_records_ += records;
  in_flight_bytes_ += bytes;
  return sequence;
}

DeliveryTracker::Entry* DeliveryTracker::find(std::uint64_t sequence) {
  if (entries_.empty()) return nullptr;
  std::uint64_t first = entries_.front().sequence;
  if (sequence < first || sequence - first >= entries_.size()) return nullptr;
  return &entries_[sequence - first];
}

void DeliveryTracker::finish_part(Entry& e) {
  if (e.parts_left == 0 || --e.parts_left > 0) return;
  in_flight_records_ -= e.records;
  in_flight_bytes_ -= e.bytes;
  if (latency_ && e.status.is_ok() && !e.timestamps_ms.empty()) {
    std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    // One add per run of equal timestamps (records come in runs stamped in the same
    // millisecond): the histogram's counters are shared by the pipeline's tasks, and an
    // atomic add per record made each task thread pull their cache lines from the others.
    std::int64_t run = 0;
    std::uint64_t run_length = 0;
    for (std::int64_t t : e.timestamps_ms) {
      if (t <= 0) continue;
      if (t == run) {
        ++run_length;
        continue;
      }
      if (run_length) latency_->add(now - run, run_length);
      run = t;
      run_length = 1;
    }
    if (run_length) latency_->add(now - run, run_length);
  }
  e.timestamps_ms.clear();
  e.timestamps_ms.shrink_to_fit();
}

void DeliveryTracker::complete(std::uint64_t sequence, const Status& status) {
  std::lock_guard lock(mutex_);
  Entry* e = find(sequence);
  if (!e) return;
  if (!status.is_ok() && e->status.is_ok()) e->status = status;
  finish_part(*e);
  changed_.notify_all();
}

void DeliveryTracker::abandon(std::uint64_t sequence) {
  std::lock_guard lock(mutex_);
  Entry* e = find(sequence);
  if (!e) return;
  if (e->status.is_ok()) e->status = Status::cancelled("abandoned");
  while (e->parts_left > 0) finish_part(*e);
  changed_.notify_all();
}

void DeliveryTracker::discard(std::uint64_t sequence) {
  std::lock_guard lock(mutex_);
  Entry* e = find(sequence);
  if (!e) return;
  e->timestamps_ms.clear();
  while (e->parts_left > 0) finish_part(*e);
  e->positions.clear();
  e->records = 0;
  e->status = Status::ok();
  changed_.notify_all();
}

void DeliveryTracker::done_called_twice() {
  std::lock_guard lock(mutex_);
  misused_ = Status::fatal(
      "the sink called done twice for one batch, a bug in the sink plugin (done is called "
      "exactly once per write, when the batch is durable): nothing more is committed");
  changed_.notify_all();
}

DeliveryTracker::Drained DeliveryTracker::drain() {
  Drained out;
  PartitionSlots slots;
  std::lock_guard lock(mutex_);
  if (misused_) {
    out.error = misused_;
    return out;
  }
  while (!entries_.empty() && entries_.front().parts_left == 0) {
    Entry& e = entries_.front();
    if (!e.status.is_ok()) {
      out.error = e.status;
      break;  // stays at the front: nothing after it is ever committed
    }
    out.records += e.records;
    for (const auto& p : e.positions) {
      auto [at, added] = slots.slot(p.topic, p.partition);
      if (added) out.positions.push_back(p);
      else out.positions[at].next_offset = p.next_offset;  // later batches come later in the partition
    }
    entries_.pop_front();
  }
  return out;
}

DeliveryTracker::Rewound DeliveryTracker::rewind() {
  Rewound out;
  PartitionSlots slots;
  std::lock_guard lock(mutex_);
  for (const Entry& e : entries_) {
    const Code code = e.status.code();
    if (!out.error && !e.status.is_ok() && code != Code::rewind && code != Code::cancelled)
      out.error = e.status;
    for (const Position& start : e.starts) {
      auto [at, added] = slots.slot(start.topic, start.partition);
      if (added) out.positions.push_back(start);
      else out.positions[at].next_offset = std::min(out.positions[at].next_offset, start.next_offset);  // the earliest
    }
  }
  entries_.clear();
  in_flight_records_ = 0;
  in_flight_bytes_ = 0;
  changed_.notify_all();
  return out;
}

bool DeliveryTracker::wait_for_room(std::uint64_t max_records, std::uint64_t max_bytes,
                                    Millis timeout) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] {
    return in_flight_records_ < max_records && in_flight_bytes_ < max_bytes;
  });
}

bool DeliveryTracker::wait_all(Millis timeout) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] {
    return std::all_of(entries_.begin(), entries_.end(),
                       [](const Entry& e) { return e.parts_left == 0; });
  });
}

std::uint64_t DeliveryTracker::in_flight_records() const {
  std::lock_guard lock(mutex_);
  return in_flight_records_;
}

std::uint64_t DeliveryTracker::in_flight_bytes() const {
  std::lock_guard lock(mutex_);
  return in_flight_bytes_;
}

std::vector<Position> positions_of(const Batch& batch) {
  std::vector<Position> out;
  out.reserve(batch.spans.size());
  for (const auto& s : batch.spans) out.push_back({s.topic, s.partition, s.next});
  return out;
}

}  // namespace pipehost::host
