// Kafka's rule for a topic name, for the host ([kafka.topics], dead-letter topics) and
// plugins (a sink's destinations) alike: a name the broker would refuse is a config
// problem or a record's fault, never a request that fails later.
#pragma once
#include <algorithm>
#include <string_view>

namespace pipehost {

inline bool is_kafka_topic_name(std::string_view topic) {
  return !topic.empty() && topic.size() <= 249 && topic != "." && topic != ".." &&
         std::all_of(topic.begin(), topic.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
         });
}

}  // namespace pipehost
