#include "consumer_lag.hpp"

#include <algorithm>

namespace pipehost::kafka {

void ConsumerLag::publish(rd_kafka_t* consumer, std::vector<Partition> partitions) {
  std::lock_guard lock(mutex_);
  partitions_ = std::move(partitions);
  set_gauges(consumer);
}

void ConsumerLag::forget(std::string_view topic, std::int32_t partition) {
  std::lock_guard lock(mutex_);
  std::erase_if(partitions_, [&](const Partition& p) { return p.partition == partition && p.topic == topic; });
  asked_end_.erase({std::string(topic), partition});
}

void ConsumerLag::refresh(rd_kafka_t* consumer, int timeout_ms) {
  rd_kafka_topic_partition_list_t* list = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (partitions_.empty()) return;
    list = rd_kafka_topic_partition_list_new(static_cast<int>(partitions_.size()));
    for (const auto& p : partitions_)
      rd_kafka_topic_partition_list_add(list, p.topic.c_str(), p.partition)->offset = -1;  // the end
  }
  // A ListOffsets request per leader, served on the brokers' threads: the poll thread
  // never waits for it.
  const rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(consumer, list, timeout_ms);
  std::lock_guard lock(mutex_);
  if (!err)
    for (int i = 0; i < list->cnt; ++i) {
      const auto& e = list->elems[i];
      if (!e.err && e.offset >= 0) asked_end_[{e.topic, e.partition}] = e.offset;
    }
  rd_kafka_topic_partition_list_destroy(list);
  set_gauges(consumer);
}

void ConsumerLag::set_gauges(rd_kafka_t* consumer) {
  for (const auto& p : partitions_) {
    if (!p.gauge || p.position < 0) continue;
    std::int64_t low = 0, high = -1;
    rd_kafka_get_watermark_offsets(consumer, p.topic.c_str(), p.partition, &low, &high);
    if (auto asked = asked_end_.find({p.topic, p.partition}); asked != asked_end_.end())
      high = std::max(high, asked->second);
    if (high < 0) continue;
    p.gauge->set(std::max<std::int64_t>(0, high - p.position));
  }
}

}  // namespace pipehost::kafka
