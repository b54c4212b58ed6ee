// redis_sum: keeps per-key running totals of a numeric field in Redis, exactly once.
// Each batch is summed per key in C++ and applied by one Lua script together with the
// source positions of its records (see sum_script.hpp), so a redelivered record is
// skipped instead of counted twice, and a sink whose idea of the positions is stale
// (another process took the partition over) notices and re-plans.
#pragma once
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <pipehost/refused.hpp>
#include <pipehost/sdk.hpp>

#include "redis_connection.hpp"
#include "sink_config.hpp"
#include "write_plan.hpp"

namespace pipehost::redis {

class RedisSumSink final : public Sink {
 public:
  using Config = RedisSumConfig;
  RedisSumSink(const Config& config, Context& context);

  void start() override;
  void prepare(Batch& batch) override;
  void write(Batch& batch, BatchDone done) override;
  void stop() override;
  std::optional<std::int64_t> stored_position(std::string_view topic,
                                              std::int32_t partition) override;
  void forget_position(std::string_view topic, std::int32_t partition) override;

 private:
  enum class Outcome { applied, conflict, overflow, wrong_type };
  // A total the script would take out of range: its index in the plan's increments and
  // the total Redis holds ("" for none); or (wrong_type) what it holds instead of a total
  // ("a list, not a total", "\"abc\", not a decimal total").
  struct Overflow {
    std::size_t increment;
    std::string stored;
  };

  void ensure_ready();
  void load_positions(const std::vector<std::string>& fields);
  std::optional<std::int64_t> parse_position(const std::string& field, const redisReply& r) const;
  void remember(const std::string& field, std::optional<std::int64_t> position);
  Outcome run_script(const WritePlan& plan, std::vector<Overflow>& overflows);
  std::vector<std::size_t> over_the_limit(const WritePlan& plan,
                                          const std::vector<Overflow>& overflows) const;
  [[noreturn]] void refuse(const Batch& batch, const std::vector<std::size_t>& records,
                           const std::string& why);
  [[noreturn]] void refuse_wrong_types(const Batch& batch, const WritePlan& plan,
                                       const std::vector<Overflow>& keys);
  std::vector<std::string> script_command(const WritePlan& plan) const;
  void finish(const Batch& batch, const WritePlan& plan);

  SinkConfig config_;
  Context& context_;
  RedisConnection connection_;
  RecordReader reader_;
  std::string script_sha_;
  PositionCache positions_;  // what Redis holds, as far as this sink knows (cleared on a reconnect)
  // Every position this sink stored or read since start, per field (forget_position drops
  // one): what must not vanish.
  std::unordered_map<std::string, std::int64_t> seen_;
  std::vector<ReadRecord> read_;  // the batch's keys and amounts, reused from write to write
  // Records whose amount would take a total out of the exact range (2^53 units), found
  // while writing; rejected when the batch is read again (see refused.hpp).
  RefusedRecords refused_;
  std::mutex mutex_;  // write and stored_position may come from different threads
  Counter& records_written_;
  Counter& batches_written_;
  Counter& conflicts_;
  Counter& records_already_applied_;
  Counter& amounts_rounded_;  // double amounts with more decimals than scale
  bool rounding_warned_ = false;
};

}  // namespace pipehost::redis
