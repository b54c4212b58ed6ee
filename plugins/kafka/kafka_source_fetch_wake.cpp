// Waking librdkafka 2.0.2's fetchers, which otherwise sit idle for up to a second with
// records waiting (see records_waiting), and nudging a joining group.
#include "kafka_source.hpp"

#include <pthread.h>

#include <chrono>
#include <thread>

namespace pipehost::kafka {

// librdkafka 2.0.2 stops fetching a partition while the consumer's queue is past
// queued.min.messages or queued.max.messages.kbytes, and decides again only when the
// partition's broker thread wakes up: on network or internal activity, else after a
// second (later releases made that second `fetch.queue.backoff.ms`). A consumer that
// empties its queue meanwhile sits idle for the rest of the second with records waiting
// on the broker, unless the queue holds a second of records (memory). Only a queue that
// held half a threshold's worth since it was last empty can have passed one (librdkafka
// counts payload bytes only; this source counts keys too). So when this source empties
// its queue after such a run, or a poll finds nothing for kStallWaitMs within 2 s of one
// (or while a partition is behind its cached high watermark), the waker thread asks the
// leaders for the latest offsets: the request is served by each leader's broker thread,
// which wakes up, decides again and fetches. One round at a time; never from a consumer
// that keeps up with live records in short runs (measured at 400k records/s: 6,556
// wakes in 26 s when every full batch counted as a possible stall, ~100 with the run's
// size, each a request the broker serves).
// Measured (2M records, 1 task, bench/NOTES.md): 9.7-11.7 s to drain with a 16 MiB
// queue without it, 1.3-2.5 s with a 1 MiB queue with it; with the earlier wake at half
// a queue (wake_below_half_full) 1.34 -> 1.67 M records/s.
bool KafkaSource::records_waiting() {
  for (const auto& [tp, state] : assigned_) {
    if (state.read_to < 0 || state.at_end) continue;
    std::int64_t low = 0, high = -1;
    if (cached_watermarks(tp.first, tp.second, low, high) && high > state.read_to) return true;
  }
  return false;
}

// The watermarks librdkafka cached with its last fetch: no request. `topic` comes from
// intern(), so its data() ends with a NUL.
bool KafkaSource::cached_watermarks(std::string_view topic, std::int32_t partition,
                                    std::int64_t& low, std::int64_t& high) {
  return rd_kafka_get_watermark_offsets(consumer_, topic.data(), partition, &low, &high) ==
         RD_KAFKA_RESP_ERR_NO_ERROR;
}

// A backlog fills the queue with whole fetch responses and stops the fetcher at the
// threshold; waiting for the queue to run dry before waking it leaves the consumer idle
// for the fetch's round trip, with records waiting on the broker. So, while full batches
// come, the queue's size is estimated (its message count from librdkafka, times this
// poll's mean payload: librdkafka keeps the byte count to itself), and the fetcher is
// woken once the queue, seen at half a threshold or more, falls below half: the other
// half is still queued while the fetch travels. One wake per such crossing, at most one
// per fetch response that filled the queue.
void KafkaSource::wake_below_half_full(std::size_t taken, std::size_t payload_bytes) {
  const std::size_t queued = static_cast<std::size_t>(rd_kafka_queue_length(queue_));
  const std::size_t queued_bytes = queued * (payload_bytes / taken);
  const bool high = queued_bytes >= stall_bytes_ || queued >= stall_messages_;
  if (high) {
    queue_was_high_ = true;
  } else if (queue_was_high_ && !paused_) {
    queue_was_high_ = !wake_stalled_fetchers();  // else the next poll tries again
  }
}

// False while a round is still under way: one round at a time.
bool KafkaSource::wake_stalled_fetchers() {
  std::lock_guard lock(wake_mutex_);
  if (!waker_.joinable()) return true;
  if (!wake_partitions_.empty()) return false;
  for (const auto& [tp, state] : assigned_)
    if (!state.at_end) wake_partitions_.emplace_back(tp.first, tp.second);
  if (wake_partitions_.empty()) return true;
  fetcher_wakes_->add();
  wake_changed_.notify_one();
  return true;
}

// The waker thread: asks the leaders for the partitions' latest offsets, one request per
// leader (the answer is not needed, only the request reaching each leader's broker
// thread). The query waits for the answers, so it runs here rather than in poll. While
// the member is joining the group it also nudges the group every kGroupNudge.
void KafkaSource::start_waker() {
  waker_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "kafka-waker");
    constexpr auto kGroupNudge = std::chrono::milliseconds(100);
    constexpr auto kLagRefresh = std::chrono::seconds(5);
    std::unique_lock lock(wake_mutex_);
    auto work = [&] { return waker_stopping_ || !wake_partitions_.empty(); };
    auto next_lag = std::chrono::steady_clock::now() + kLagRefresh;
    while (true) {
      if (joining_) {
        if (!wake_changed_.wait_for(lock, kGroupNudge, work)) {
          lock.unlock();
          nudge_group();
          lock.lock();
          continue;
        }
      } else {
        wake_changed_.wait_until(lock, next_lag, [&] { return work() || joining_; });
      }
      if (waker_stopping_) return;
      if (!joining_ && std::chrono::steady_clock::now() >= next_lag) {
        lock.unlock();
        lag_.refresh(consumer_, 2000);
        lock.lock();
        next_lag = std::chrono::steady_clock::now() + kLagRefresh;
        if (waker_stopping_) return;
      }
      if (wake_partitions_.empty()) continue;  // the member began joining
      rd_kafka_topic_partition_list_t* list =
          rd_kafka_topic_partition_list_new(static_cast<int>(wake_partitions_.size()));
      for (const auto& [topic, partition] : wake_partitions_)
        rd_kafka_topic_partition_list_add(list, topic.c_str(), partition)->offset = -1;  // latest
      lock.unlock();
      rd_kafka_offsets_for_times(consumer_, list, 1000);
      rd_kafka_topic_partition_list_destroy(list);
      lock.lock();
      wake_partitions_.clear();
    }
  });
}

void KafkaSource::set_joining(bool joining) {
  {
    std::lock_guard lock(wake_mutex_);
    joining_ = joining;
  }
  wake_changed_.notify_one();
}

// librdkafka 2.0.2 advances its group state machine (rd_kafka_cgrp_serve) only when
// its main thread wakes: on an operation for that thread, else once a second. And it
// joins at most once a second. A member whose first generation fails (measured: the
// first of 3 tasks forms generation 1 alone, its SyncGroup meets the others' arrival,
// REBALANCE_IN_PROGRESS) may rejoin 1 s after its last join, but the once-a-second
// wake-up came just before that (by ~10 ms), so it rejoined 2 s later and the whole
// group waited: the first record of a 2M-record run came ~2.1 s after start in most
// runs. Any request to the main thread wakes it: asking for the assignment is one, and
// cheap. So the join happens within kGroupNudge of being allowed.
void KafkaSource::nudge_group() {
  rd_kafka_topic_partition_list_t* current = nullptr;
  if (rd_kafka_assignment(consumer_, &current) == RD_KAFKA_RESP_ERR_NO_ERROR && current)
    rd_kafka_topic_partition_list_destroy(current);
}

void KafkaSource::stop_waker() {
  {
    std::lock_guard lock(wake_mutex_);
    waker_stopping_ = true;
  }
  wake_changed_.notify_one();
  if (waker_.joinable()) waker_.join();
}

}  // namespace pipehost::kafka
