// The source of `pipehost replay`: the records of a pipeline's dead-letter topic, read
// from where the replay last stopped up to the topic's end when the replay started, so
// records that fail again (written back to the same topic) wait for the next replay.
// The pipehost.* headers the dead-letter writer added are taken off; a record whose
// payload is not the one its source read (a stage before the one that rejected it
// replaced it) cannot be fed back to the first stage: it is left in the topic, counted.
#pragma once
#include <librdkafka/rdkafka.h>

#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <pipehost/sdk.hpp>

namespace pipehost::host {

struct ReplaySourceConfig {
  std::string topic;
  std::string group;
  static void declare(OptionList<ReplaySourceConfig>& o) {
    o.required("topic", &ReplaySourceConfig::topic, "the dead-letter topic to replay");
    o.required("group", &ReplaySourceConfig::group, "the consumer group keeping the replay's progress");
  }
};

class ReplaySource final : public Source {
 public:
  using Config = ReplaySourceConfig;
  ReplaySource(const Config& config, Context& context);
  ~ReplaySource() override;
  void start() override;
  PollResult poll(Batch& out, Millis max_wait) override;
  void commit(const std::vector<Position>& positions) override;
  void seek(const std::vector<Position>& positions) override;

  // The component, for a pipeline the replay command builds.
  static const ComponentSpec& component();

 private:
  struct Partition {
    std::int64_t next = 0;  // the next offset to read
    std::int64_t end = 0;   // the topic's end when the replay started
    std::int64_t counted_to = 0;  // letters before it are counted (a seek reads some again)
  };
  void take(rd_kafka_message_t* m, Batch& out);

  Config config_;
  Context& context_;
  rd_kafka_t* consumer_ = nullptr;
  rd_kafka_queue_t* queue_ = nullptr;
  std::map<std::int32_t, Partition> partitions_;
  std::uint64_t replayed_ = 0;
  std::uint64_t not_replayable_ = 0;
  std::uint64_t others_ = 0;  // letters of other pipelines (a shared dead-letter topic)
  std::uint64_t duplicates_ = 0;  // letters of a record fed at an earlier letter

  // Where a record first came from (pipehost.origin.*), and a letter's own place.
  struct Origin {
    std::uint32_t topic = 0;  // into origin_topics_
    std::int32_t partition = 0;
    std::int64_t offset = 0;
    bool operator==(const Origin&) const = default;
  };
  struct OriginHash {
    std::size_t operator()(const Origin& o) const noexcept {
      const auto mixed = static_cast<std::uint64_t>(o.offset) * 0x9e3779b97f4a7c15ULL ^
                         (static_cast<std::uint64_t>(static_cast<std::uint32_t>(o.partition)) << 20) ^ o.topic;
      return std::hash<std::uint64_t>()(mixed);
    }
  };
  struct Letter {
    std::int32_t partition = 0;
    std::int64_t offset = 0;
    bool operator==(const Letter&) const = default;
  };
  static constexpr std::size_t kMostRemembered = 500'000;  // within the 64 MB goal
  bool is_duplicate(const std::string& topic, const std::string& partition, const std::string& offset,
                    const rd_kafka_message_t* m);
  std::vector<std::string> origin_topics_;
  std::unordered_map<Origin, Letter, OriginHash> first_letters_;  // the letter each record was fed at
  bool warned_full_ = false;
};

}  // namespace pipehost::host
