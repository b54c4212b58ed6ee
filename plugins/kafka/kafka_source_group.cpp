// The kafka source's part in its consumer group: assignments and revocations, pausing,
// and the subscribed topics' existence.
#include "kafka_source.hpp"

#include <algorithm>

#include <pipehost/edit_distance.hpp>

#include "kafka_config.hpp"

namespace pipehost::kafka {

void KafkaSource::on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                               rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  auto* self = static_cast<KafkaSource*>(opaque);
  const bool cooperative = self->cooperative_;
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    self->assign(partitions);
    if (cooperative) rd_kafka_incremental_assign(rk, partitions);
    else rd_kafka_assign(rk, partitions);
    if (self->paused_) self->pause_partitions(partitions, true);
  } else {
    self->revoke(partitions);
    if (cooperative) rd_kafka_incremental_unassign(rk, partitions);
    else rd_kafka_assign(rk, nullptr);
  }
}

void KafkaSource::assign(rd_kafka_topic_partition_list_t* partitions) {
  assignment_seen_ = true;
  ever_assigned_ = true;
  std::string names;
  for (int i = 0; i < partitions->cnt; ++i) {
    rd_kafka_topic_partition_t& p = partitions->elems[i];
    std::string_view topic = intern(p.topic);
    PartitionState& state = assigned_[{topic, p.partition}] = PartitionState{};
    state.lag = &context_.gauge("consumer_lag", {{"topic", std::string(topic)},
                                                 {"partition", std::to_string(p.partition)}});
    // A transactional sink's positions are the group's offsets: nothing to ask.
    if (auto resume = sink_commits() ? std::nullopt : context_.resume_position(topic, p.partition)) {
      p.offset = *resume;
      state.read_to = *resume;  // the first record read continues from the sink's position
      state.span_from = *resume;
      state.resumed_at = *resume;
      state.assigned_from = *resume;
      // What the sink holds is acknowledged: commit it, or the group's offset would lag
      // forever when nothing is left to read (and stop_at_end would never see the end).
      resumed_.push_back({topic, p.partition, *resume});
    }
    names += (names.empty() ? "" : ", ") + std::string(topic) + "/" + std::to_string(p.partition) +
             (p.offset >= 0 ? "@" + std::to_string(p.offset) : "");
  }
  if (partitions->cnt) context_.info("assigned " + names);
  context_.set_ready(true);  // an empty assignment too: the group has answered
  set_joining(false);
}

// A sink's stored position behind the group's committed offset: the sink's data end
// before records the group has had delivered. Right after its store was restored from a
// backup (the records are written again, as they must be); but when the store holds them
// under another name (the pipeline renamed and back, a positions key shared), they are
// written twice. Reading from the sink's position is kept; the user is told which.
void KafkaSource::warn_if_behind_group(const std::vector<Position>& resumed) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(resumed.size()));
  for (const auto& p : resumed) rd_kafka_topic_partition_list_add(list, std::string(p.topic).c_str(), p.partition);
  if (rd_kafka_committed(consumer_, list, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < list->cnt; ++i) {
      const rd_kafka_topic_partition_t& c = list->elems[i];
      const std::int64_t stored = resumed[static_cast<std::size_t>(i)].next_offset;
      if (c.err || c.offset < 0 || c.offset <= stored) continue;
      context_.warn("the sink's stored position of " + std::string(c.topic) + "/" + std::to_string(c.partition) +
                    " is " + std::to_string(stored) + ", behind the group's committed offset " +
                    std::to_string(c.offset) + ": reading again from " + std::to_string(stored) + ". Right if "
                    "the sink's store was restored from a backup; if it holds those records under another "
                    "name (the pipeline renamed and back, a positions key or table shared), they are counted twice");
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
}

void KafkaSource::revoke(rd_kafka_topic_partition_list_t* partitions) {
  // What the sink acknowledged since the host's last commit (up to commit_interval_ms of
  // records) is committed now, or the next owner would read it all again.
  rd_kafka_topic_partition_list_destroy(accept(context_.take_acknowledged()));
  commit_sync(nullptr);
  std::string names;
  for (int i = 0; i < partitions->cnt; ++i) {
    std::string_view topic = intern(partitions->elems[i].topic);
    auto it = assigned_.find({topic, partitions->elems[i].partition});
    lag_.forget(topic, partitions->elems[i].partition);
    if (it != assigned_.end() && it->second.lag) it->second.lag->clear();
    assigned_.erase({topic, partitions->elems[i].partition});
    acknowledged_.erase({topic, partitions->elems[i].partition});
    sent_.erase({topic, partitions->elems[i].partition});
    names += (names.empty() ? "" : ", ") + std::string(topic) + "/" +
             std::to_string(partitions->elems[i].partition);
  }
  if (partitions->cnt) context_.info("revoked " + names);
  // With nothing left, whether this member is caught up is unknown until the group
  // assigns again (after a lost session, e.g. a broker restart).
  if (assigned_.empty()) {
    assignment_seen_ = false;
    context_.set_ready(false);  // until the group assigns again
    set_joining(true);
  }
}

// Positions resumed from the sink (in a rebalance callback, inside librdkafka's poll):
// checked against the group's offset and committed before poll returns, so before the
// host can write and commit anything read since (checked at the next poll, the group's
// offset was this member's own by then: a false "behind the group").
void KafkaSource::settle_resumed() {
  if (resumed_.empty()) return;
  warn_if_behind_group(resumed_);
  commit(resumed_);
  resumed_.clear();
}


void KafkaSource::pause_partitions(rd_kafka_topic_partition_list_t* partitions, bool pause) {
  rd_kafka_resp_err_t rc = pause ? rd_kafka_pause_partitions(consumer_, partitions)
                                 : rd_kafka_resume_partitions(consumer_, partitions);
  if (rc) context_.warn(std::string(pause ? "pause" : "resume") + ": " + error_text(rc));
}

// While paused the host keeps polling: the consumer answers its group (heartbeats,
// rebalances, max.poll.interval.ms) and fetches nothing.
bool KafkaSource::set_paused(bool paused) {
  paused_ = paused;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(8);
  for (const auto& [tp, state] : assigned_)
    rd_kafka_topic_partition_list_add(list, std::string(tp.first).c_str(), tp.second);
  if (list->cnt > 0) pause_partitions(list, paused);
  rd_kafka_topic_partition_list_destroy(list);
  return true;
}

// A consumer of a topic that does not exist otherwise waits in silence (brokers here do
// not create topics on demand). `fail`: a bounded run, which would never end.
void KafkaSource::check_topics_exist(bool fail) {
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(consumer_, 1, nullptr, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR || !md) {
    context_.warn("cannot list the topics of " + context_.kafka_bootstrap() +
                  " yet: not checking that the subscribed topics exist");
    return;
  }
  std::vector<std::string> existing;
  for (int i = 0; i < md->topic_cnt; ++i)
    if (!md->topics[i].err) existing.emplace_back(md->topics[i].topic);
  rd_kafka_metadata_destroy(md);
  std::string problems;
  for (const auto& topic : topics_) {
    if (std::find(existing.begin(), existing.end(), topic) != existing.end()) continue;
    std::string closest;
    std::size_t best = std::max<std::size_t>(3, topic.size() / 3) + 1;
    // Not Kafka's own topics, nor a dead-letter topic (pipehost makes the pipeline's at
    // start, before this check: a dead_letter_topic of `<topic>-dlq` was offered for `<topic>`).
    for (const auto& e : existing)
      if (e.rfind("__", 0) != 0 && !e.ends_with("-dlq") && edit_distance(topic, e) < best) {
        best = edit_distance(topic, e);
        closest = e;
      }
    problems += (problems.empty() ? "" : "; ") + std::string("topic '") + topic +
                "' does not exist" + (closest.empty() ? "" : " (did you mean '" + closest + "'?)");
  }
  if (problems.empty()) return;
  problems += ": create it, list it under [kafka.topics] so pipehost creates it, or fix the name";
  if (fail) throw FatalError(problems);
  context_.warn(problems + "; waiting for it to appear");
}
}  // namespace pipehost::kafka
