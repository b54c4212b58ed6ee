// Writes rejected records to a pipeline's dead-letter topic, with headers saying where
// they came from and why: pipehost.pipeline, pipehost.stage, pipehost.error and
// pipehost.origin.{topic,partition,offset}. Synchronous: a rejected record is on the
// topic before the batch that carried it is acknowledged.
#pragma once
#include <functional>
#include <string>

#include "pipehost/record.hpp"
#include "pipehost/status.hpp"
#include "runtime/services.hpp"

struct rd_kafka_s;

namespace pipehost::host {

struct DeadLetterTimeouts {
  int write_ms = 30000;    // write() gives up (retriable) after this
  int message_ms = 60000;  // librdkafka's message.timeout.ms for dead letters
};

class DeadLetterWriter {
 public:
  using Timeouts = DeadLetterTimeouts;
  struct Outcome;

  DeadLetterWriter(const Services& services, std::string topic, std::string pipeline,
                   Timeouts timeouts = {});
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

  const Services& services_;
  std::string topic_;
  std::string pipeline_;
  Timeouts timeouts_;
  rd_kafka_s* producer_ = nullptr;
};

}  // namespace pipehost::host
