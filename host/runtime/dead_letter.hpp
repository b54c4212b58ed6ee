// Writes rejected records to a pipeline's dead-letter topic, with headers saying where
// they came from and why: pipehost.pipeline, pipehost.stage, pipehost.error and
// pipehost.origin.{topic,partition,offset}. Synchronous: a rejected record is on the
// topic before the batch that carried it is acknowledged.
#pragma once
#include <string>

#include "pipehost/record.hpp"
#include "pipehost/status.hpp"
#include "runtime/services.hpp"

struct rd_kafka_s;

namespace pipehost::host {

class DeadLetterWriter {
 public:
  DeadLetterWriter(const Services& services, std::string topic, std::string pipeline);
  ~DeadLetterWriter();
  DeadLetterWriter(const DeadLetterWriter&) = delete;
  DeadLetterWriter& operator=(const DeadLetterWriter&) = delete;

  Status write(const std::vector<Rejection>& rejections, const std::string& stage);
  const std::string& topic() const { return topic_; }

 private:
  const Services& services_;
  std::string topic_;
  std::string pipeline_;
  rd_kafka_s* producer_ = nullptr;
};

}  // namespace pipehost::host
