#include "replay/replay_source.hpp"

#include <algorithm>
#include <charconv>

#include "services/kafka_environment.hpp"

namespace pipehost::host {
namespace {

std::string error_text(rd_kafka_resp_err_t err) { return rd_kafka_err2str(err); }

}  // namespace

ReplaySource::ReplaySource(const Config& config, Context& context) : config_(config), context_(context) {}

ReplaySource::~ReplaySource() {
  if (queue_) rd_kafka_queue_destroy(queue_);
  if (consumer_) {
    rd_kafka_consumer_close(consumer_);
    rd_kafka_destroy(consumer_);
  }
  if (consumer_ || replayed_ || not_replayable_)
    context_.info("fed " + std::to_string(replayed_) +
                  " dead letter(s) back through the pipeline (those rejected again are on the "
                  "dead-letter topic again: see the pipeline's line below); " +
                  std::to_string(not_replayable_) +
                  " left in the topic (their payload was replaced by a stage before the one that "
                  "rejected them, so they cannot be fed to the first stage again)" +
                  (others_ ? "; " + std::to_string(others_) + " of other pipelines sharing the topic left to them"
                           : std::string()) +
                  (duplicates_ ? "; " + std::to_string(duplicates_) +
                                     " skipped as another letter of a record already fed (a record dead-lettered "
                                     "twice: read again after a crash, or several of its copies refused)"
                               : std::string()));
}

void ReplaySource::start() {
  StringMap settings = context_.kafka_properties();
  settings["bootstrap.servers"] = context_.kafka_bootstrap();
  settings["group.id"] = config_.group;
  settings["enable.auto.commit"] = "false";
  settings["enable.auto.offset.store"] = "false";
  // Letters deleted by retention while the replay runs: on from the oldest left (the
  // default, the end, would never reach the end it set out to read to).
  settings["auto.offset.reset"] = "earliest";
  settings["enable.partition.eof"] = "true";  // see take()
  std::string error;
  rd_kafka_conf_t* conf = kafka_conf(settings, error);
  if (!conf) throw FatalError("replay consumer: " + error);
  char err[512];
  consumer_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!consumer_) throw FatalError(std::string("cannot create the replay consumer: ") + err);
  rd_kafka_poll_set_consumer(consumer_);
  queue_ = rd_kafka_queue_get_consumer(consumer_);

  // Every partition of the topic, assigned directly (no group membership): where the
  // replay stopped (the sink's stored position first, then the group's offset, then the
  // start), up to the end now.
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(consumer_, config_.topic.c_str(), nullptr);
  rd_kafka_resp_err_t rc = rd_kafka_metadata(consumer_, 0, rkt, &md, 10000);
  rd_kafka_topic_destroy(rkt);
  if (rc) throw RetriableError("cannot read the metadata of " + config_.topic + ": " + error_text(rc));
  if (md->topic_cnt == 1 && md->topics[0].err && md->topics[0].err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
    const rd_kafka_resp_err_t err = md->topics[0].err;
    rd_kafka_metadata_destroy(md);
    throw RetriableError("cannot read the dead-letter topic " + config_.topic + ": " + error_text(err));
  }
  if (md->topic_cnt != 1 || md->topics[0].err) {  // nothing to replay: done, not failed
    rd_kafka_metadata_destroy(md);
    context_.info("dead-letter topic '" + config_.topic + "' does not exist: nothing was ever dead-lettered, "
                  "so there is nothing to replay");
    context_.set_expected_total(0);
    return;
  }
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
  for (int i = 0; i < md->topics[0].partition_cnt; ++i)
    rd_kafka_topic_partition_list_add(list, config_.topic.c_str(), md->topics[0].partitions[i].id);
  rd_kafka_metadata_destroy(md);
  if ((rc = rd_kafka_committed(consumer_, list, 10000))) {
    rd_kafka_topic_partition_list_destroy(list);
    throw RetriableError("cannot read the replay group's offsets: " + error_text(rc));
  }
  for (int i = 0; i < list->cnt; ++i) {
    auto& e = list->elems[i];
    std::int64_t low = 0, high = 0;
    if ((rc = rd_kafka_query_watermark_offsets(consumer_, e.topic, e.partition, &low, &high, 10000))) {
      rd_kafka_topic_partition_list_destroy(list);
      throw RetriableError("cannot read the end of " + config_.topic + ": " + error_text(rc));
    }
    std::int64_t from = e.offset >= 0 ? e.offset : low;
    if (auto stored = context_.resume_position(config_.topic, e.partition)) {
      // Past the end: the topic was deleted and made again since the sink stored it. The
      // letters now in it would all be skipped.
      if (*stored > high) {
        const std::string where = config_.topic + "/" + std::to_string(e.partition);
        rd_kafka_topic_partition_list_destroy(list);
        throw FatalError("the sink's stored position of " + where + " is " + std::to_string(*stored) +
                         ", past the end of that partition (" + std::to_string(high) +
                         "): the dead-letter topic was deleted and made again. Delete the sink's stored "
                         "position of " + where + " to replay the letters now in it");
      }
      from = *stored;
    }
    from = std::clamp(from, low, high);
    e.offset = from;
    partitions_[e.partition] = {from, high, from};
  }
  rc = rd_kafka_assign(consumer_, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (rc) throw FatalError("cannot assign " + config_.topic + ": " + error_text(rc));
  std::uint64_t waiting = 0;
  for (const auto& [p, part] : partitions_) waiting += static_cast<std::uint64_t>(part.end - part.next);
  context_.info(std::to_string(waiting) + " dead letter(s) to replay from " + config_.topic);
  context_.set_expected_total(waiting);
}

PollResult ReplaySource::poll(Batch& out, Millis max_wait) {
  auto done = [&] {
    return std::all_of(partitions_.begin(), partitions_.end(),
                       [](const auto& p) { return p.second.next >= p.second.end; });
  };
  if (done()) return PollResult::end;
  rd_kafka_message_t* first = rd_kafka_consumer_poll(consumer_, static_cast<int>(max_wait.count()));
  if (!first) return PollResult::more;
  take(first, out);
  std::vector<rd_kafka_message_t*> more(out.capacity > 1 ? out.capacity - 1 : 1);
  ssize_t n = rd_kafka_consume_batch_queue(queue_, 0, more.data(), more.size());
  for (ssize_t i = 0; i < n; ++i) take(more[static_cast<std::size_t>(i)], out);
  return PollResult::more;
}

void ReplaySource::take(rd_kafka_message_t* m, Batch& out) {
  auto it = partitions_.find(m->partition);
  // The end reached: the offsets left before `end` hold no record (a transaction's marker),
  // or the replay would wait for them forever.
  if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && it != partitions_.end() && m->offset >= it->second.end)
    it->second.next = std::max(it->second.next, it->second.end);
  if (m->err || it == partitions_.end() || m->offset < it->second.next || m->offset >= it->second.end) {
    if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
      context_.warn("replay consumer: " + error_text(m->err) + " (librdkafka retries)");
    rd_kafka_message_destroy(m);
    return;
  }
  Partition& part = it->second;
  Span* span = nullptr;
  for (auto& s : out.spans)
    if (s.partition == m->partition) span = &s;
  if (!span) span = &out.spans.emplace_back(Span{config_.topic, m->partition, part.next, part.next});
  span->next = m->offset + 1;
  part.next = m->offset + 1;
  const bool first_read = m->offset >= part.counted_to;
  part.counted_to = std::max(part.counted_to, m->offset + 1);

  std::string payload_from, pipeline, origin_topic, origin_partition, origin_offset;
  std::vector<Header> headers;
  rd_kafka_headers_t* hdrs = nullptr;
  if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name;
    const void* value;
    size_t size;
    for (size_t i = 0; !rd_kafka_header_get_all(hdrs, i, &name, &value, &size); ++i) {
      std::string v = value ? std::string(static_cast<const char*>(value), size) : std::string();
      const std::string_view key(name);
      if (key == "pipehost.payload") payload_from = v;
      if (key == "pipehost.pipeline") pipeline = v;
      if (key == "pipehost.origin.topic") origin_topic = v;
      if (key == "pipehost.origin.partition") origin_partition = v;
      if (key == "pipehost.origin.offset") origin_offset = v;
      // The letter's other pipehost.* headers are for this replay; its origin (the record's
      // first topic, partition and offset) stays with the record, so that a letter it
      // gets again names where it first came from, not this topic.
      if (key.rfind("pipehost.", 0) == 0 && key.rfind("pipehost.origin.", 0) != 0) continue;
      headers.push_back({name, std::move(v), value == nullptr});
    }
  }
  // Another pipeline's letter (a dead-letter topic two pipelines share): not this one's to
  // feed through its stages, nor to count; left in the topic for that pipeline's replay.
  if (!pipeline.empty() && pipeline != context_.pipeline()) {
    others_ += first_read;
    rd_kafka_message_destroy(m);
    return;
  }
  if (payload_from != "source") {  // covered by the span: committed past, left in the topic
    not_replayable_ += first_read;
    rd_kafka_message_destroy(m);
    return;
  }
  // One record, several letters (dead-lettered again after a crash, or a router's copies
  // refused by the sink one by one): the record is fed once, at its first letter, as it
  // would make all its copies again. Keyed by the letter's own offset, so that letters
  // read again after a seek are fed again.
  if (is_duplicate(origin_topic, origin_partition, origin_offset, m)) {
    duplicates_ += first_read;
    rd_kafka_message_destroy(m);
    return;
  }
  // Borrowed like the kafka source's: still the bytes as read, so a record that fails
  // again is marked replayable in its next dead letter too.
  Record& r = out.add();
  if (m->key) r.key.borrow({static_cast<const char*>(m->key), m->key_len});
  else r.key.borrow_null();
  if (m->payload) r.payload.borrow({static_cast<const char*>(m->payload), m->len});
  else r.payload.borrow_null();  // a tombstone stays one (in dead letters too)
  r.headers = std::move(headers);
  r.timestamp_ms = rd_kafka_message_timestamp(m, nullptr);
  r.origin = {config_.topic, m->partition, m->offset};
  replayed_ += first_read;
  out.hold(m, [](void* message) { rd_kafka_message_destroy(static_cast<rd_kafka_message_t*>(message)); });
}

// Whether the letter `m` is of a record fed at another letter. Remembers the first letter
// of each origin, up to kMostRemembered (~70 bytes each with the hash table's share:
// ~35 MB at most); past that, letters of records
// not seen yet are fed whatever their twins (said once).
bool ReplaySource::is_duplicate(const std::string& topic, const std::string& partition,
                                const std::string& offset, const rd_kafka_message_t* m) {
  Origin origin;
  const char* p_end = partition.data() + partition.size();
  const char* o_end = offset.data() + offset.size();
  if (topic.empty() || std::from_chars(partition.data(), p_end, origin.partition).ptr != p_end ||
      std::from_chars(offset.data(), o_end, origin.offset).ptr != o_end)
    return false;  // no origin (a source without positions): nothing to match
  auto topic_at = std::find(origin_topics_.begin(), origin_topics_.end(), topic);
  origin.topic = static_cast<std::uint32_t>(topic_at - origin_topics_.begin());
  if (topic_at == origin_topics_.end()) origin_topics_.push_back(topic);
  const Letter letter{m->partition, m->offset};
  auto found = first_letters_.find(origin);
  if (found != first_letters_.end()) return !(found->second == letter);
  if (first_letters_.size() < kMostRemembered) {
    first_letters_.emplace(origin, letter);
  } else if (!warned_full_) {
    warned_full_ = true;
    context_.warn("more than " + std::to_string(kMostRemembered) +
                  " letters: a record dead-lettered twice whose first letter comes after this one is fed twice");
  }
  return false;
}

// The sink refused rows while writing (or lost writes): the letters from its stored
// positions are read again, so that it rejects the refused ones first. librdkafka drops
// what it fetched before the seek.
void ReplaySource::seek(const std::vector<Position>& positions) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(positions.size()));
  for (const auto& p : positions)
    if (p.topic == config_.topic && partitions_.count(p.partition))
      rd_kafka_topic_partition_list_add(list, config_.topic.c_str(), p.partition)->offset = p.next_offset;
  std::string failed;
  if (list->cnt > 0) {
    if (rd_kafka_error_t* error = rd_kafka_seek_partitions(consumer_, list, 10000)) {
      failed = rd_kafka_error_string(error);
      rd_kafka_error_destroy(error);
    }
    for (int i = 0; failed.empty() && i < list->cnt; ++i)
      if (list->elems[i].err) failed = error_text(list->elems[i].err);
  }
  if (failed.empty())
    for (int i = 0; i < list->cnt; ++i) partitions_[list->elems[i].partition].next = list->elems[i].offset;
  rd_kafka_topic_partition_list_destroy(list);
  if (!failed.empty()) throw RetriableError("cannot read " + config_.topic + " again: " + failed);
}

// Standalone commits (the consumer is not a group member): the replay group has no
// members, so the coordinator takes them.
void ReplaySource::commit(const std::vector<Position>& positions) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(positions.size()));
  for (const auto& p : positions)
    rd_kafka_topic_partition_list_add(list, std::string(p.topic).c_str(), p.partition)->offset = p.next_offset;
  rd_kafka_resp_err_t rc = rd_kafka_commit(consumer_, list, 0);
  rd_kafka_topic_partition_list_destroy(list);
  if (rc) throw RetriableError("committing the replay's progress: " + error_text(rc));
}

const ComponentSpec& ReplaySource::component() {
  static const PluginSpec spec = [] {
    PluginSpec p{"replay", "0", "pipehost replay's dead-letter source"};
    p.add_source<ReplaySource>("replay", "Reads a dead-letter topic back");
    return p;
  }();
  return spec.components.front();
}

}  // namespace pipehost::host
