// The kafka source's positions: what is committed to the group, when a bounded run is
// done, and where a rewind reads again.
#include "kafka_source.hpp"

#include <algorithm>
#include <chrono>

#include "kafka_config.hpp"

namespace pipehost::kafka {

bool KafkaSource::caught_up() {
  auto now = std::chrono::steady_clock::now();
  if (!assignment_seen_) {
    // No partitions: revoked in a rebalance that has not assigned again (the other
    // members may have ended and left). Nothing of this member's is in flight, so it is
    // done when the group is: every partition committed to its end. Otherwise it would
    // wait for an assignment that a group with nothing left to read may never make.
    if (!ever_assigned_ || now - last_end_check_ < std::chrono::milliseconds(250)) return false;
    last_end_check_ = now;
    return group_done();
  }
  for (const auto& [tp, state] : assigned_)
    if (!state.at_end) return false;
  // An end-of-partition event can be stale (the broker restarted, the producer went on):
  // confirm with the broker's high watermarks, at most every 250 ms.
  if (now - last_end_check_ < std::chrono::milliseconds(250)) return false;
  last_end_check_ = now;
  for (auto& [tp, state] : assigned_) {
    int64_t low = 0, high = 0;
    if (rd_kafka_query_watermark_offsets(consumer_, std::string(tp.first).c_str(), tp.second, &low,
                                         &high, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR)
      return false;
    if (high > low && state.read_to < high) {
      state.at_end = false;  // not at the end after all: wait for the records and a fresh end event
      return false;
    }
  }
  commit_ends();
  return group_done();
}

// At the end of a partition whose records are all acknowledged, the end offset is the
// position to commit, not the last record's offset + 1: the offsets after it may hold no
// record (a transaction's commit marker), and a consumer that read nothing (start =
// "latest") has no record to commit. Otherwise the group would never look finished.
void KafkaSource::commit_ends() {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(4);
  for (const auto& [tp, state] : assigned_) {
    if (!state.at_end || state.read_to < 0) continue;
    auto acked = acknowledged_.find(tp);
    std::int64_t acknowledged = acked == acknowledged_.end() ? -1 : acked->second;
    if (state.taken_to >= 0 && acknowledged < state.taken_to) continue;  // records in flight
    if (acknowledged >= state.read_to) continue;
    acknowledged_[tp] = state.read_to;
    rd_kafka_topic_partition_list_add(list, std::string(tp.first).c_str(), tp.second)->offset =
        state.read_to;
  }
  // With a transactional sink the commit is synchronous: it is done before the next
  // transaction commits offsets of its own, so it cannot land after one and undo it.
  const int async = sink_commits() ? 0 : 1;
  if (list->cnt > 0 && rd_kafka_commit(consumer_, list, async) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    commits_->add();
    if (!async) mark_sent(list);
  }
  rd_kafka_topic_partition_list_destroy(list);
}

// True when the group has committed every partition of the subscribed topics up to its
// high watermark. A member must not end on its own assignment alone: a partition being
// moved between members (a rebalance) belongs to nobody for a moment, and
// would be left unread if every member ended then.
bool KafkaSource::group_done() {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(8);
  bool done = true;
  for (const auto& t : topics_) {
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(consumer_, t.c_str(), nullptr);
    rd_kafka_resp_err_t rc = rd_kafka_metadata(consumer_, 0, rkt, &md, 2000);
    rd_kafka_topic_destroy(rkt);
    if (!rc && md && md->topic_cnt == 1 &&
        md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      rd_kafka_metadata_destroy(md);
      rd_kafka_topic_partition_list_destroy(list);
      check_topics_exist(true);  // throws, naming the topic and the closest existing names
    }
    if (rc || !md || md->topic_cnt != 1 || md->topics[0].err) done = false;
    else
      for (int p = 0; p < md->topics[0].partition_cnt; ++p)
        rd_kafka_topic_partition_list_add(list, t.c_str(), md->topics[0].partitions[p].id);
    if (md) rd_kafka_metadata_destroy(md);
  }
  if (done) done = rd_kafka_committed(consumer_, list, 3000) == RD_KAFKA_RESP_ERR_NO_ERROR;
  // An asynchronous commit can fail unseen (e.g. during a rebalance): send again what
  // this member acknowledged but the group does not have yet.
  rd_kafka_topic_partition_list_t* again = rd_kafka_topic_partition_list_new(4);
  for (int i = 0; done && i < list->cnt; ++i) {
    const rd_kafka_topic_partition_t& p = list->elems[i];
    auto mine = acknowledged_.find({intern(p.topic), p.partition});
    if (mine != acknowledged_.end() && p.offset < mine->second && assigned_.count(mine->first))
      rd_kafka_topic_partition_list_add(again, p.topic, p.partition)->offset = mine->second;
  }
  // Synchronous with a transactional sink, as in commit_ends: done before a transaction
  // commits offsets of its own, it cannot land after one and take the group's offset back.
  const int async = sink_commits() ? 0 : 1;
  if (again->cnt > 0 && rd_kafka_commit(consumer_, again, async) == RD_KAFKA_RESP_ERR_NO_ERROR &&
      !async)
    mark_sent(again);
  rd_kafka_topic_partition_list_destroy(again);
  for (int i = 0; done && i < list->cnt; ++i) {
    const rd_kafka_topic_partition_t& p = list->elems[i];
    int64_t low = 0, high = 0;
    if (p.err || rd_kafka_query_watermark_offsets(consumer_, p.topic, p.partition, &low, &high,
                                                  2000) != RD_KAFKA_RESP_ERR_NO_ERROR)
      done = false;
    else if (high > low && p.offset < high)
      done = false;
  }
  rd_kafka_topic_partition_list_destroy(list);
  return done;
}

void KafkaSource::commit(const std::vector<Position>& positions) {
  rd_kafka_topic_partition_list_t* list = accept(positions);
  if (list->cnt > 0 && !sink_commits()) {
    // Asynchronous: on_commit records what the coordinator confirmed.
    rd_kafka_resp_err_t rc = rd_kafka_commit(consumer_, list, 1);
    if (rc) context_.warn("offset commit: " + error_text(rc));
    else commits_->add();
  }
  rd_kafka_topic_partition_list_destroy(list);
}

// Records acknowledged positions of assigned partitions; returns those that moved (the
// caller destroys the list). With a transactional sink they are committed already.
rd_kafka_topic_partition_list_t* KafkaSource::accept(const std::vector<Position>& positions) {
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(positions.size()));
  for (const auto& p : positions) {
    std::string_view topic = p.topic;  // points into interned_: it came from take()
    // A partition revoked since these records were read belongs to another member now.
    auto state = assigned_.find({topic, p.partition});
    if (state == assigned_.end()) continue;
    // Or it came back: the batch was still in flight when the host's wait at the revoke
    // ended (Context::take_acknowledged), and the group's offset may have moved past it
    // since. Committing it would move the offset back (the records after it read again).
    if (state->second.assigned_from < 0 || p.next_offset < state->second.assigned_from) continue;
    auto [it, fresh] = acknowledged_.try_emplace({topic, p.partition}, p.next_offset);
    if (!fresh && it->second >= p.next_offset) continue;  // already there (an end commit)
    it->second = p.next_offset;
    rd_kafka_topic_partition_list_add(list, std::string(topic).c_str(), p.partition)->offset =
        p.next_offset;
  }
  if (list->cnt > 0 && sink_commits()) mark_sent(list);
  return list;
}

void KafkaSource::on_commit(rd_kafka_t*, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t* offsets, void* opaque) {
  auto* self = static_cast<KafkaSource*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__NO_OFFSET || !offsets) return;
  for (int i = 0; i < offsets->cnt; ++i) {
    const rd_kafka_topic_partition_t& p = offsets->elems[i];
    if (err || p.err) {
      // Not recorded as sent: revoke and close send it again.
      self->commit_failures_->add();
      if (self->commit_failures_->value() <= 10)
        self->context_.warn("offset commit of " + std::string(p.topic) + "/" +
                            std::to_string(p.partition) + " failed: " +
                            error_text(err ? err : p.err) + " (sent again on revoke or close)");
      continue;
    }
    auto& sent = self->sent_[{self->intern(p.topic), p.partition}];
    sent = std::max(sent, static_cast<std::int64_t>(p.offset));
  }
}

void KafkaSource::mark_sent(const rd_kafka_topic_partition_list_t* committed) {
  for (int i = 0; i < committed->cnt; ++i)
    sent_[{intern(committed->elems[i].topic), committed->elems[i].partition}] =
        committed->elems[i].offset;
}

void KafkaSource::commit_sync(rd_kafka_topic_partition_list_t* only) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(8);
  for (const auto& [tp, offset] : acknowledged_) {
    bool wanted = only == nullptr;
    for (int i = 0; only && i < only->cnt; ++i)
      wanted = wanted || (tp.first == only->elems[i].topic && tp.second == only->elems[i].partition);
    auto sent = sent_.find(tp);
    if (sent != sent_.end() && sent->second == offset) wanted = false;  // already committed
    if (wanted)
      rd_kafka_topic_partition_list_add(list, std::string(tp.first).c_str(), tp.second)->offset = offset;
  }
  if (list->cnt > 0) {
    // Another member leaving makes commits fail while the group rebalances: retry a bit.
    constexpr int kAttempts = 10;
    for (int attempt = 1; attempt <= kAttempts; ++attempt) {
      rd_kafka_resp_err_t rc = rd_kafka_commit(consumer_, list, 0);
      if (rc == RD_KAFKA_RESP_ERR_NO_ERROR) {
        mark_sent(list);
        break;
      }
      if (rc == RD_KAFKA_RESP_ERR__NO_OFFSET) break;
      if (rc != RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS || attempt == kAttempts) {
        context_.warn("offset commit: " + error_text(rc) +
                      " (the partitions' next reader starts at the group's last commit: the records "
                      "after it come again, unless the sink stores its positions; none is lost)");
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
}

void KafkaSource::seek(const std::vector<Position>& requested) {
  std::vector<Position> positions;
  positions.reserve(requested.size());
  for (Position p : requested) {
    // A partition revoked meanwhile is read again by its new owner, from the group's offset.
    auto it = assigned_.find({p.topic, p.partition});
    if (it == assigned_.end()) continue;
    // Or it came back, and the position is of a batch read before it was revoked (still
    // in flight when a sink asked to read again): the group's offset may have moved past
    // it since, by another member's commits. Seeking there would write those records
    // again and move the offset back. This assignment read nothing yet: it reads from the
    // group's offset anyway. Else from where this assignment began, unless the position
    // is the sink's stored one (its store lost writes: read again from there). A
    // transactional sink's positions are the group's offsets: this assignment began at
    // the first record after the one it was given, so nothing lies between.
    const std::int64_t assigned_from = it->second.assigned_from;
    if (assigned_from < 0) continue;
    if (p.next_offset < assigned_from &&
        (sink_commits() || context_.resume_position(p.topic, p.partition) != p.next_offset))
      p.next_offset = assigned_from;
    positions.push_back(p);
  }
  if (positions.empty()) return;
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(positions.size()));
  for (const auto& p : positions)
    rd_kafka_topic_partition_list_add(list, std::string(p.topic).c_str(), p.partition)->offset = p.next_offset;
  rd_kafka_error_t* error = rd_kafka_seek_partitions(consumer_, list, 10000);
  std::string failed;
  if (error) {
    failed = rd_kafka_error_string(error);
    rd_kafka_error_destroy(error);
  }
  for (int i = 0; failed.empty() && i < list->cnt; ++i)
    if (list->elems[i].err)
      failed = std::string(list->elems[i].topic) + "/" + std::to_string(list->elems[i].partition) +
               ": " + error_text(list->elems[i].err);
  rd_kafka_topic_partition_list_destroy(list);
  if (!failed.empty()) throw RetriableError("cannot seek the consumer: " + failed);
  for (const auto& p : positions) {
    auto it = assigned_.find({p.topic, p.partition});
    if (it == assigned_.end()) continue;
    Gauge* lag = it->second.lag;
    const std::int64_t assigned_from = it->second.assigned_from;
    it->second = PartitionState{};
    it->second.lag = lag;
    it->second.read_to = p.next_offset;
    it->second.span_from = p.next_offset;
    // The batches read before the seek are of this assignment: their positions are at or
    // past where it began; a late one of an earlier assignment still is not.
    it->second.assigned_from = assigned_from >= 0 ? std::min(assigned_from, p.next_offset) : p.next_offset;
    auto acked = acknowledged_.find(it->first);
    if (acked != acknowledged_.end()) acked->second = std::min(acked->second, p.next_offset);
  }
}
}  // namespace pipehost::kafka
