// The consumer_lag gauges: per partition, the records after the acknowledged position.
// The end of a partition is the higher of librdkafka's cached high watermark (updated by
// every fetch) and one asked of the leaders every few seconds by the waker thread: a
// source that does not fetch (paused, its queue full behind a sink that does not answer)
// has a cached watermark that stands still while the topic grows, and its lag would read
// as it was, or 0.
#pragma once
#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <pipehost/context.hpp>

namespace pipehost::kafka {

class ConsumerLag {
 public:
  struct Partition {
    std::string topic;
    std::int32_t partition = 0;
    std::int64_t position = -1;  // acknowledged (or first read); -1: unknown
    Gauge* gauge = nullptr;
  };

  // Poll thread: the assigned partitions and their positions (replacing the last ones).
  void publish(rd_kafka_t* consumer, std::vector<Partition> partitions);
  // Poll thread, at a revoke: a partition whose gauge is cleared is not set again.
  void forget(std::string_view topic, std::int32_t partition);
  // Waker thread: asks the leaders for the partitions' ends (one request per leader,
  // waiting up to timeout_ms) and sets the gauges.
  void refresh(rd_kafka_t* consumer, int timeout_ms);

 private:
  void set_gauges(rd_kafka_t* consumer);  // under mutex_

  std::mutex mutex_;
  std::vector<Partition> partitions_;
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> asked_end_;
};

}  // namespace pipehost::kafka
