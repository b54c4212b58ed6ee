#include "trades.hpp"

#include <cstdio>
#include <ctime>

namespace pipehost::datagen {
namespace {

constexpr std::int64_t kNanos = 1000000000;
constexpr std::int64_t kStart = 1672531200;  // 2023-01-01T00:00:00Z
constexpr std::int64_t kYear = 365 * 86400;

}  // namespace

std::string rfc3339_nanos(std::int64_t nanos_since_epoch) {
  std::time_t seconds = static_cast<std::time_t>(nanos_since_epoch / kNanos);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(nanos_since_epoch % kNanos));
  return buf;
}

TradeGenerator::TradeGenerator(std::uint64_t seed, bool key_by_id)
    : seed_(seed), key_by_id_(key_by_id),
      schema_(StructSchema::make(
          {"id", "version", "counter_party", "book", "expired", "matures_at", "created_at"})) {}

std::string TradeGenerator::make(std::uint64_t index, std::int64_t, Value& value) const {
  Draws d{mix(seed_ ^ mix(index))};
  std::string id = "T" + std::to_string(d.below(100000));
  const auto version = static_cast<std::int64_t>(d.below(100));
  std::string counter_party = "CP-" + std::to_string(d.below(100));
  std::string book = "B" + std::to_string(d.below(100));
  const bool expired = d.below(2) == 1;
  const std::int64_t created = (kStart + static_cast<std::int64_t>(d.below(2 * kYear))) * kNanos +
                               static_cast<std::int64_t>(d.below(kNanos));
  const std::int64_t matures = created + static_cast<std::int64_t>(d.below(10 * kYear)) * kNanos +
                               static_cast<std::int64_t>(d.below(kNanos));
  std::string key = key_by_id_ ? id : std::string();
  value = Struct{schema_,
                 {Value(std::move(id)), Value(version), Value(std::move(counter_party)),
                  Value(std::move(book)), Value(expired), Value(rfc3339_nanos(matures)),
                  Value(rfc3339_nanos(created))}};
  return key;
}

}  // namespace pipehost::datagen
