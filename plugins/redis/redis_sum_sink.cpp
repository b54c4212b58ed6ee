#include "redis_sum_sink.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include "amounts.hpp"
#include "sum_script.hpp"

namespace pipehost::redis {
namespace {

// A conflict means another writer moved a partition's position between our read and
// our script; re-planning settles it unless two sinks keep writing the same partition.
constexpr int kMaxConflictRounds = 8;

}  // namespace

RedisSumSink::RedisSumSink(const Config& config, Context& context)
    : config_(resolve(config, context.pipeline())),
      context_(context),
      connection_(config_.endpoint, config_.connect_timeout, config_.command_timeout),
      reader_(config_.key_field, config_.value_field, config_.scale),
      records_written_(context.counter("records_out")),
      batches_written_(context.counter("batches_out")),
      conflicts_(context.counter("conflicts")),
      records_already_applied_(context.counter("records_already_applied")),
      amounts_rounded_(context.counter("amounts_rounded")) {}

void RedisSumSink::start() {
  std::lock_guard lock(mutex_);
  try {
    ensure_ready();
  } catch (const RetriableError& e) {
    context_.warn(std::string("redis_sum: Redis is not reachable yet, will retry: ") + e.what());
    throw;
  }
  context_.info("redis_sum: totals of '" + config_.value_field + "' per '" + config_.key_field +
                "' in redis " + config_.endpoint.describe() + " (" +
                (config_.layout == Layout::hash ? "hash '" + config_.hash_key + "'"
                                                : "keys '" + config_.key_prefix + "<key>'") +
                "), positions in '" + config_.positions_key + "'");
}

void RedisSumSink::stop() {
  std::lock_guard lock(mutex_);
  connection_.disconnect();
}

// Connects and loads the script. After a reconnect the cached positions may be stale
// (the last reply may have been lost), so they are read again.
void RedisSumSink::ensure_ready() {
  if (connection_.connected()) return;
  positions_.clear();  // seen_ stays: a position that vanished across the reconnect is caught
  Reply reply = connection_.command({"SCRIPT", "LOAD", kSumScript});
  if (is_error(*reply)) connection_.throw_error(*reply, "SCRIPT LOAD");
  script_sha_ = std::string(text_of(*reply));
}

std::optional<std::int64_t> RedisSumSink::parse_position(const std::string& field,
                                                         const redisReply& r) const {
  if (r.type == REDIS_REPLY_NIL) return std::nullopt;
  std::string_view text = text_of(r);
  std::int64_t offset = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), offset);
  if (r.type != REDIS_REPLY_STRING || ec != std::errc() || end != text.data() + text.size())
    throw FatalError("redis_sum: '" + config_.positions_key + "' field '" + field + "' holds '" +
                     std::string(text) + "', not an offset");
  return offset;
}

void RedisSumSink::load_positions(const std::vector<std::string>& fields) {
  std::vector<std::string> command{"HMGET", config_.positions_key};
  for (const auto& f : fields)
    if (!positions_.contains(f)) command.push_back(f);
  if (command.size() == 2) return;
  Reply reply = connection_.command(command);
  if (is_error(*reply)) connection_.throw_error(*reply, "HMGET " + config_.positions_key);
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != command.size() - 2)
    throw FatalError("redis_sum: unexpected reply to HMGET " + config_.positions_key);
  for (std::size_t i = 0; i < reply->elements; ++i)
    remember(command[i + 2], parse_position(command[i + 2], *reply->element[i]));
}

// A position this sink stored or read, gone from the hash: Redis lost its data (a
// restart without persistence, FLUSHALL). The totals went with it or not; either way
// they cannot be made exact again, and writing on would count from a partial sum.
void RedisSumSink::remember(const std::string& field, std::optional<std::int64_t> position) {
  positions_[field] = position;
  if (position) {
    seen_[field] = *position;
    return;
  }
  auto seen = seen_.find(field);
  if (seen != seen_.end())
    throw FatalError("redis_sum: the position of " + field + " vanished from '" + config_.positions_key +
                     "' (it was " + std::to_string(seen->second) +
                     "): Redis lost its data, so the totals cannot be made exact again; "
                     "restore Redis, or delete the totals and reset the group's offsets");
}

std::optional<std::int64_t> RedisSumSink::stored_position(std::string_view topic,
                                                          std::int32_t partition) {
  std::lock_guard lock(mutex_);
  ensure_ready();
  std::string field = position_field(topic, partition);
  Reply reply = connection_.command({"HGET", config_.positions_key, field});
  if (is_error(*reply)) connection_.throw_error(*reply, "HGET " + config_.positions_key);
  auto position = parse_position(field, *reply);
  remember(field, position);
  return position;
}

void RedisSumSink::forget_position(std::string_view topic, std::int32_t partition) {
  std::lock_guard lock(mutex_);
  ensure_ready();
  std::string field = position_field(topic, partition);
  Reply reply = connection_.command({"HDEL", config_.positions_key, field});
  if (is_error(*reply)) connection_.throw_error(*reply, "HDEL " + config_.positions_key);
  positions_[field] = std::nullopt;
  seen_.erase(field);
}

// Reads every record's key and amount, rejecting those that cannot be counted before
// anything is written: the host dead-letters them before a position past them is stored.
void RedisSumSink::prepare(Batch& batch) {
  std::lock_guard lock(mutex_);
  refused_.reject_in(batch);
  for (std::size_t i = 0; i < batch.records.size(); ++i) {
    if (batch.records[i].dropped) continue;  // refused while writing it before
    ReadRecord r = reader_.read(batch.records[i]);
    if (!r.problem.empty()) batch.reject(i, "redis_sum: " + r.problem);
    else if (config_.layout == Layout::string && config_.positions_key.size() == config_.key_prefix.size() + r.key().size() &&
             config_.positions_key.starts_with(config_.key_prefix) && config_.positions_key.ends_with(r.key()))
      batch.reject(i, "redis_sum: the total of '" + std::string(r.key()) + "' would be key '" +
                          config_.positions_key + "', the positions hash (positions_key); set key_prefix "
                          "or positions_key to keep them apart");
  }
}

void RedisSumSink::write(Batch& batch, BatchDone done) {
  std::lock_guard lock(mutex_);
  // Read again after the host compacted the batch: the keys are views into the values.
  read_.clear();
  read_.reserve(batch.records.size());
  for (const auto& record : batch.records) {
    read_.push_back(reader_.read(record));
    if (!read_.back().problem.empty())
      throw FatalError("redis_sum: write of a record prepare did not accept (" + read_.back().problem + ")");
  }
  std::vector<std::string> fields = partition_fields(batch);
  for (int round = 1;; ++round) {
    ensure_ready();
    load_positions(fields);
    WritePlan plan = plan_batch(batch, read_, positions_);
    if (!plan.out_of_range.empty())
      refuse(batch, plan.out_of_range, "the batch's sum for its key so far");
    std::vector<Overflow> overflows;
    const Outcome outcome = plan.empty() ? Outcome::applied : run_script(plan, overflows);
    if (outcome == Outcome::applied) {
      finish(batch, plan);
      done(Status::ok());
      return;
    }
    if (outcome == Outcome::overflow)
      refuse(batch, over_the_limit(plan, overflows), "the total stored in Redis");
    if (outcome == Outcome::wrong_type) refuse_wrong_types(batch, plan, overflows);
    conflicts_.add();
    // Redis holds another position than we last saw: read them again (one that vanished
    // fails the sink: see remember).
    for (const auto& f : fields) positions_.erase(f);
    load_positions(fields);
    if (round == kMaxConflictRounds)
      throw RetriableError("redis_sum: positions in '" + config_.positions_key +
                           "' keep changing: is another sink writing the same partitions?");
  }
}

// The counted records that would take a reported total out of range, in the order the
// script would add them: each is left out, and the ones after it still count.
std::vector<std::size_t> RedisSumSink::over_the_limit(const WritePlan& plan,
                                                      const std::vector<Overflow>& overflows) const {
  std::vector<std::size_t> out;
  for (const Overflow& o : overflows) {
    if (o.increment >= plan.increments.size())
      throw FatalError("redis_sum: the script named total " + std::to_string(o.increment + 1) +
                       " of " + std::to_string(plan.increments.size()));
    const std::string& key = plan.increments[o.increment].first;
    auto stored = o.stored.empty() ? std::optional<std::int64_t>(0)
                                   : parse_units(o.stored, config_.scale);
    if (!stored) throw FatalError("redis_sum: the total of '" + key + "' is '" + o.stored + "'");
    std::int64_t total = *stored;
    for (std::size_t i : plan.counted) {
      if (read_[i].key() != key) continue;
      if (std::llabs(total + read_[i].units) >= kExactLimit) out.push_back(i);
      else total += read_[i].units;
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Has `records` rejected without writing anything: remembered by origin, then the batch
// is read again (a rewind) so that prepare rejects them and the host dead-letters them
// before any position past them is stored.
void RedisSumSink::refuse(const Batch& batch, const std::vector<std::size_t>& records,
                          const std::string& why) {
  if (records.empty())  // a read again would find the same: never rewind for nothing
    throw FatalError("redis_sum: the script reported a total out of range (" + why +
                     ") that no record of the batch takes there");
  const std::string limit = format_units(kExactLimit - 1, config_.scale);
  for (std::size_t i : records) {
    const Record& r = batch.records[i];
    const std::string reason = "redis_sum: adding " + format_units(read_[i].units, config_.scale) +
                               " to " + std::string(read_[i].key()) + " (" + why +
                               ") would leave the exact range of totals, -" + limit + " to " +
                               limit + " (2^53 - 1 units at scale " +
                               std::to_string(config_.scale) + ")";
    if (!refused_.remember(r, reason)) throw FatalError(reason);  // it cannot be read again
  }
  throw PositionMismatch("redis_sum: " + std::to_string(records.size()) +
                         " record(s) would take a total out of the exact range (2^53 units); "
                         "the batch is read again so that they are rejected before it is written");
}

// Records adding to a total the script cannot add to (a key of another kind of value: a
// list, the positions hash itself; a value that is not a decimal total at this scale):
// never overwritten; rejected as refuse() does.
void RedisSumSink::refuse_wrong_types(const Batch& batch, const WritePlan& plan,
                                      const std::vector<Overflow>& keys) {
  std::size_t refused = 0;
  for (const Overflow& k : keys) {
    if (k.increment >= plan.increments.size())
      throw FatalError("redis_sum: the script named total " + std::to_string(k.increment + 1) + " of " +
                       std::to_string(plan.increments.size()));
    const std::string& key = plan.increments[k.increment].first;
    const bool hash = config_.layout == Layout::hash;
    const std::string reason =
        "redis_sum: " +
        (hash ? "field '" + key + "' of hash '" + config_.hash_key + "'" : "key '" + config_.key_prefix + key + "'") +
        " holds " + k.stored + ": records adding to it are rejected (what it holds is never " +
        "overwritten; set " + (hash ? "hash_key" : "key_prefix") + " to keep the totals apart)";
    for (std::size_t i : plan.counted) {
      if (read_[i].key() != key) continue;
      if (!refused_.remember(batch.records[i], reason)) throw FatalError(reason);  // cannot be read again
      ++refused;
    }
  }
  if (refused == 0) throw FatalError("redis_sum: the script reported a key of another kind that no record adds to");
  throw PositionMismatch("redis_sum: " + std::to_string(refused) +
                         " record(s) add to keys holding another kind of value; the batch is read "
                         "again so that they are rejected before it is written");
}

void RedisSumSink::finish(const Batch& batch, const WritePlan& plan) {
  refused_.written(batch);
  for (const auto& p : plan.partitions) remember(p.field, p.next);
  records_written_.add(plan.counted.size());
  for (std::size_t i : plan.counted) {
    if (!read_[i].rounded) continue;
    amounts_rounded_.add();
    if (!std::exchange(rounding_warned_, true))
      context_.warn("redis_sum: " + decimal::rounding_warning(config_.value_field, *read_[i].rounded,
                                                               config_.scale));
  }
  records_already_applied_.add(plan.already_applied);
  if (!plan.empty()) batches_written_.add();
}

std::vector<std::string> RedisSumSink::script_command(const WritePlan& plan) const {
  const bool hash = config_.layout == Layout::hash;
  std::vector<std::string> c{"EVALSHA", script_sha_};
  c.reserve(8 + plan.increments.size() * 2 + plan.partitions.size() * 3);
  c.push_back(std::to_string(hash ? 2 : 1 + plan.increments.size()));
  c.push_back(config_.positions_key);
  if (hash) c.push_back(config_.hash_key);
  else
    for (const auto& [key, units] : plan.increments) c.push_back(config_.key_prefix + key);
  c.push_back(hash ? "hash" : "string");
  c.push_back(std::to_string(config_.scale));
  c.push_back(std::to_string(plan.partitions.size()));
  for (const auto& p : plan.partitions) {
    c.push_back(p.field);
    c.push_back(p.expected ? std::to_string(*p.expected) : "none");
    c.push_back(std::to_string(p.next));
  }
  for (const auto& [key, units] : plan.increments) {
    if (hash) c.push_back(key);
    c.push_back(std::to_string(units));
  }
  return c;
}

RedisSumSink::Outcome RedisSumSink::run_script(const WritePlan& plan,
                                               std::vector<Overflow>& overflows) {
  std::vector<std::string> command = script_command(plan);
  Reply reply = connection_.command(command);
  if (is_error(*reply) && text_of(*reply).starts_with("NOSCRIPT")) {
    // The server lost its script cache (SCRIPT FLUSH, failover): EVAL caches it again.
    command[0] = "EVAL";
    command[1] = kSumScript;
    reply = connection_.command(command);
  }
  if (is_error(*reply)) connection_.throw_error(*reply, "redis_sum script");
  auto element = [&](std::size_t i) { return text_of(*reply->element[i]); };
  if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 && element(0) == "ok")
    return Outcome::applied;
  if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 3 && reply->elements % 2 == 1 &&
      (element(0) == "overflow" || element(0) == "wrongtype")) {
    const bool overflow = element(0) == "overflow";
    for (std::size_t i = 1; i + 1 < reply->elements; i += 2) {
      std::size_t index = 0;
      std::string_view text = element(i);
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), index);
      if (ec != std::errc() || end != text.data() + text.size() || index == 0)
        throw FatalError("redis_sum: unexpected reply from the script");
      overflows.push_back({index - 1, std::string(element(i + 1))});
    }
    return overflow ? Outcome::overflow : Outcome::wrong_type;
  }
  if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 && element(0) == "conflict") {
    context_.warn("redis_sum: position of " + std::string(element(1)) + " is " +
                  std::string(element(2)) +
                  " in Redis, not what this sink last saw: another writer took the partition "
                  "over; reloading positions and redoing the batch");
    return Outcome::conflict;
  }
  throw FatalError("redis_sum: unexpected reply from the script");
}

}  // namespace pipehost::redis
