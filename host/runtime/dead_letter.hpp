// Writes rejected records to a pipeline's dead-letter topic, with headers saying where
// they came from and why: pipehost.pipeline, pipehost.stage, pipehost.error and
// pipehost.origin.{topic,partition,offset}. It writes through the kafka plugin's own
// sink, so dead letters are produced with the same settings as any other record.
// Synchronous: a rejected record is on the topic before the batch that carried it is
// acknowledged.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pipehost/plugin.hpp"
#include "pipehost/record.hpp"
#include "pipehost/status.hpp"

namespace pipehost::host {

struct DeadLetterTimeouts {
  // The producer's message.timeout.ms for dead letters. 0, librdkafka's "no limit" (as
  // Kafka Connect gives its producers, delivery.timeout.ms = Integer.MAX_VALUE): the
  // producer retries a letter until the broker takes it, and write() waits for its report
  // until then or a stop, so a broker down for minutes holds the pipeline up, never fails
  // it. With a limit (tests), write() waits for the report until the limit and a grace
  // (giving up sooner would queue the letters again while the producer still retries
  // them: copies on the topic).
  int message_ms = 0;
};

// The records a task dead-lettered (or skipped) in batches that a sink then had read
// again (a rewind: a row the store refused, or a store that lost writes). The read again
// rejects them again, and they are not dead-lettered (or counted) twice. Entries are forgotten once a written
// batch passes them; a crash in between still writes them again (at least once).
class RewoundDeadLetters {
 public:
  void batch_started() { this_batch_.clear(); }
  // Rejections of the batch being delivered that are now on the dead-letter topic.
  void written_to_topic(const std::vector<Rejection>& rejections);
  // The batch is read again: what it dead-lettered is not written again.
  void rewound();
  // Removes the rejections dead-lettered before a rewind, each letter matching one
  // rejection (a transform may make several alike records of one); returns how many.
  std::size_t remove_written(std::vector<Rejection>& rejections) const;
  // The batch with these spans is written: records it passed are not read again by a
  // synchronous rewind. Its letters are kept until it is acknowledged (an asynchronous
  // sink's done may still have it read again).
  void batch_written(const std::vector<Span>& spans);
  // Batches are acknowledged up to these positions: their letters are done with.
  void acknowledged(const std::vector<Position>& positions);
  // A sink's done had every batch not yet acknowledged read again (Task::rewind_in_flight).
  void rewound_in_flight();
  bool empty() const { return before_rewind_.empty(); }
  // The source loses partitions (a rebalance): what their batches read again would not
  // reach this task. All is forgotten; a letter then written again is at least once.
  void forget() {
    before_rewind_.clear();
    unacknowledged_.clear();
  }

 private:
  // One dead-lettered record: its origin and, for a router's copies of one record, its
  // destination (another copy of the same record may be refused later, and is not this one).
  struct Letter {
    std::string_view topic;  // the source's interned name
    std::int32_t partition;
    std::int64_t offset;
    std::string destination;
  };
  std::vector<Letter> this_batch_;
  std::vector<Letter> before_rewind_;
  std::vector<Letter> unacknowledged_;  // of batches written, not yet acknowledged
};

class DeadLetterWriter {
 public:
  // `sink` is the kafka plugin's sink component; `context` outlives the writer.
  DeadLetterWriter(const ComponentSpec& sink, Context& context, std::string topic,
                   std::string pipeline, DeadLetterTimeouts timeouts = {});
  ~DeadLetterWriter();
  DeadLetterWriter(const DeadLetterWriter&) = delete;
  DeadLetterWriter& operator=(const DeadLetterWriter&) = delete;

  // Ok once the broker confirmed every record. Retriable when it did not in time (or
  // `stopping` said so): records already queued may still arrive, so a retry can write
  // some twice (the dead-letter topic is at-least-once), never lose one.
  Status write(const std::vector<Rejection>& rejections, const std::string& stage,
               const std::function<bool()>& stopping = [] { return false; });
  const std::string& topic() const { return topic_; }

 private:
  Status connect();

  const ComponentSpec& spec_;
  Context& context_;
  std::string topic_;
  std::string pipeline_;
  DeadLetterTimeouts timeouts_;
  std::size_t most_letter_bytes_;  // from [kafka.properties], read once (a copy of the map per letter before)
  std::unique_ptr<SinkStage> sink_;
};

// The most a dead letter's key, payload and headers may take: under librdkafka's default
// message.max.bytes (1,000,000) with room for the record batch's own overhead. Past it
// the payload is cut (header pipehost.payload.truncated).
constexpr std::size_t kMostLetterBytes = 900'000;
void fit_in_a_message(Record& letter, std::size_t most = kMostLetterBytes);
// The most bytes a letter may have under the producer properties given to every Kafka
// client ([kafka.properties] message.max.bytes, when set lower than librdkafka's default).
std::size_t most_letter_bytes(const StringMap& kafka_properties);

// A rejection's reason cut to kMostReasonBytes (at a UTF-8 boundary, saying how much was
// cut) before it is logged or written as a letter's header: a stage that put a whole value
// into its reason would make the letter too large for the broker, and a dead letter that
// cannot be written stops the pipeline.
constexpr std::size_t kMostReasonBytes = 1024;
void clip_reason(std::string& reason);

}  // namespace pipehost::host
