// Writes rejected records to a pipeline's dead-letter topic, with headers saying where
// they came from and why: pipehost.pipeline, pipehost.stage, pipehost.error and
// pipehost.origin.{topic,partition,offset}. It writes through the kafka plugin's own
// sink, so dead letters are produced with the same settings as any other record.
// Synchronous: a rejected record is on the topic before the batch that carried it is
// acknowledged.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "pipehost/plugin.hpp"
#include "pipehost/record.hpp"
#include "pipehost/status.hpp"

namespace pipehost::host {

struct DeadLetterTimeouts {
  int write_ms = 30000;    // write() gives up (retriable) after this
  int message_ms = 60000;  // the producer's message.timeout.ms for dead letters
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
  std::unique_ptr<SinkStage> sink_;
};

// A rejection's reason cut to kMostReasonBytes (at a UTF-8 boundary, saying how much was
// cut) before it is logged or written as a letter's header: a stage that put a whole value
// into its reason would make the letter too large for the broker, and a dead letter that
// cannot be written stops the pipeline.
constexpr std::size_t kMostReasonBytes = 1024;
void clip_reason(std::string& reason);

}  // namespace pipehost::host
