#include "datagen_source.hpp"

#include <algorithm>
#include <random>
#include <thread>

#include "foods.hpp"
#include "tenants.hpp"
#include "trades.hpp"
#include "transactions.hpp"

namespace pipehost::datagen {
namespace {

std::int64_t now_micros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<Generator> make_generator(const DatagenConfig& c) {
  const auto seed = c.seed ? static_cast<std::uint64_t>(*c.seed) : std::random_device{}();
  if (c.kind == "trades") return std::make_unique<TradeGenerator>(seed, c.key_by_id);
  if (c.kind == "food") return std::make_unique<FoodGenerator>(seed);
  if (c.kind == "tenant_events")
    return std::make_unique<TenantEventGenerator>(seed, c.origin_service_id, c.origin_service_type,
                                                  c.destinations);
  return std::make_unique<TransactionGenerator>(seed, c.accounts);
}

}  // namespace

void DatagenConfig::declare(OptionList<DatagenConfig>& o) {
  o.add("kind", &DatagenConfig::kind,
        "transactions: seed 000's Transaction (transaction_id uuid, account_number IBAN-like, "
        "transaction_reference, transaction_datetime now, amount in [1, 1000] with 2 decimals; "
        "key = account_number). trades: seed 002's trade (id T0-T99999, version 0-99, "
        "counter_party CP-0-CP-99, book B0-B99, expired, matures_at and created_at as RFC 3339 "
        "strings with nanoseconds; no key). food: seed 003's feed, {\"food\": \"<one of 107 "
        "names>\"}, no key. tenant_events: seed 004's producer (origin_service_id, "
        "origin_service_type, destination_service_type, event_timestamp epoch ms, payload "
        "\"dummy-payload <uuid>\"; event i to destination i mod n; key "
        "\"<origin_service_id>:<DESTINATION>\")")
      .one_of({"transactions", "trades", "food", "tenant_events"});
  o.add("count", &DatagenConfig::count, "records in all tasks together; 0 = endless").at_least(0);
  o.add("rate", &DatagenConfig::rate,
        "records per second in all tasks together; 0 = as fast as possible")
      .range(0, 1e9);
  o.add("accounts", &DatagenConfig::accounts, "distinct account numbers").range(1, 1000000);
  o.add("seed", &DatagenConfig::seed,
        "same seed, same records (but the wall-clock timestamps); absent = random");
  o.add("key_by_id", &DatagenConfig::key_by_id, "trades: the record's key is its id (default: no key)");
  o.add("origin_service_id", &DatagenConfig::origin_service_id, "tenant_events: the producer's id");
  o.add("origin_service_type", &DatagenConfig::origin_service_type,
        "tenant_events: the producer's service type");
  o.add("destinations", &DatagenConfig::destinations,
        "tenant_events: destination service types, taken in turn (upper-cased)");
}

void DatagenConfig::check(Checker& c) const {
  if (kind == "tenant_events" && destinations.empty())
    c.problem("destinations", "tenant_events needs at least one destination");
}

DatagenSource::DatagenSource(const Config& config, Context& context)
    : context_(context),
      generator_(make_generator(config)),
      count_(static_cast<std::uint64_t>(config.count)),
      rate_(config.rate),
      task_(static_cast<std::uint64_t>(context.task_index())),
      tasks_(static_cast<std::uint64_t>(context.task_count())) {
  if (count_ > 0) context.set_expected_total(share());
  out_ = &context.counter("records_out");
}

PollResult DatagenSource::poll(Batch& out, Millis max_wait) {
  std::uint64_t n = out.capacity;
  if (count_ > 0) n = std::min(n, share() - made_);
  if (rate_ > 0) n = std::min(n, allowed_now(max_wait));
  std::int64_t now = now_micros();
  for (std::uint64_t i = 0; i < n; ++i) {
    Record& r = out.add();
    std::uint64_t index = task_ + (made_ + i) * tasks_;
    r.key = generator_->make(index, now, r.value_to_overwrite());
    r.timestamp_ms = now / 1000;
  }
  made_ += n;
  out_->add(n);
  return count_ > 0 && made_ >= share() ? PollResult::end : PollResult::more;
}

std::uint64_t DatagenSource::share() const {
  return count_ / tasks_ + (task_ < count_ % tasks_ ? 1 : 0);
}

// Records the rate allows by now, waiting (at most max_wait) for at least one.
std::uint64_t DatagenSource::allowed_now(Millis max_wait) {
  double per_task = rate_ / static_cast<double>(tasks_);
  auto deadline = std::chrono::steady_clock::now() + max_wait;
  while (true) {
    const auto now = std::chrono::steady_clock::now();
    double elapsed = std::chrono::duration<double>(now - started_).count();
    // Time not spent making records (a pause, backpressure from the sink) is not made up
    // in a burst: at most a second's worth is owed (at rate = 1, a 12 s pause sent 13
    // records at once).
    const double most_owed = std::max(1.0, per_task);
    if (elapsed * per_task - static_cast<double>(made_) > most_owed) {
      started_ = now - std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                           std::chrono::duration<double>((static_cast<double>(made_) + most_owed) / per_task));
      elapsed = std::chrono::duration<double>(now - started_).count();
    }
    auto allowed = static_cast<std::uint64_t>(elapsed * per_task) + 1;
    if (allowed > made_) return allowed - made_;
    if (std::chrono::steady_clock::now() >= deadline || context_.stopping()) return 0;
    // The time of one record, but never past the deadline nor 20 ms (a stop is seen soon:
    // at rate = 0.05 one record's time was 20 s of sleep).
    const auto one_record = std::chrono::microseconds(
        static_cast<long>(std::clamp(1e6 / per_task, 100.0, 20000.0)));
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        one_record, deadline - std::chrono::steady_clock::now()));
  }
}

}  // namespace pipehost::datagen
