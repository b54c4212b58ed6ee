// datagen: a bounded or endless source of fake records for demos, tests and benchmarks.
#include <chrono>
#include <random>
#include <thread>

#include <pipehost/sdk.hpp>

#include "transactions.hpp"

namespace pipehost::datagen {
namespace {

std::int64_t now_micros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class DatagenSource final : public Source {
 public:
  DatagenSource(const Options& options, Context& context)
      : context_(context),
        generator_(options.has("seed") ? static_cast<std::uint64_t>(options.integer("seed"))
                                       : std::random_device{}(),
                   static_cast<int>(options.integer("accounts"))),
        count_(static_cast<std::uint64_t>(options.integer("count"))),
        rate_(options.number("rate")) {
    // Task i of n makes records i, i+n, i+2n, ...: together exactly `count`.
    task_ = static_cast<std::uint64_t>(context.task_index());
    tasks_ = static_cast<std::uint64_t>(context.task_count());
    if (count_ > 0) context.set_expected_total(share());
    produced_counter_ = &context.counter("records_generated");
  }

  void start() override { started_ = std::chrono::steady_clock::now(); }

  PollResult poll(Batch& out, Millis max_wait) override {
    std::uint64_t n = out.capacity;
    if (count_ > 0) n = std::min(n, share() - made_);
    if (rate_ > 0) n = std::min(n, allowed_now(max_wait));
    std::int64_t now = now_micros();
    for (std::uint64_t i = 0; i < n; ++i) {
      Record r;
      std::uint64_t index = task_ + (made_ + i) * tasks_;
      r.key = generator_.make(index, now, r.value);
      r.timestamp_ms = now / 1000;
      out.records.push_back(std::move(r));
    }
    made_ += n;
    produced_counter_->add(n);
    return count_ > 0 && made_ >= share() ? PollResult::end : PollResult::more;
  }

 private:
  // How many of the `count` records this task makes.
  std::uint64_t share() const { return count_ / tasks_ + (task_ < count_ % tasks_ ? 1 : 0); }

  // Records the rate allows by now, waiting (at most max_wait) for at least one.
  std::uint64_t allowed_now(Millis max_wait) {
    double per_task = rate_ / static_cast<double>(tasks_);
    auto deadline = std::chrono::steady_clock::now() + max_wait;
    while (true) {
      double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
      auto allowed = static_cast<std::uint64_t>(elapsed * per_task) + 1;
      if (allowed > made_) return allowed - made_;
      if (std::chrono::steady_clock::now() >= deadline || context_.stopping()) return 0;
      std::this_thread::sleep_for(std::chrono::microseconds(
          std::max<long>(100, static_cast<long>(1e6 / per_task))));
    }
  }

  Context& context_;
  TransactionGenerator generator_;
  std::uint64_t count_;
  double rate_;
  std::uint64_t task_ = 0;
  std::uint64_t tasks_ = 1;
  std::uint64_t made_ = 0;
  Counter* produced_counter_ = nullptr;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

PluginSpec describe() {
  PluginSpec p{"datagen", "0.1.0", "Generates fake records (seed 000's transactions)", {}};
  p.add_source<DatagenSource>(
      "datagen",
      "Fake bank transactions: transaction_id (uuid), account_number (IBAN-like), "
      "transaction_reference, transaction_datetime (now), amount in [1, 1000] with 2 "
      "decimals; key = account_number",
      {
          with_allowed(option("kind", OptionType::string, std::string("transactions"),
                              "what to generate"),
                       {"transactions"}),
          with_range(option("count", OptionType::integer, std::int64_t{1000},
                            "records in all tasks together; 0 = endless"),
                     0, std::nullopt),
          with_range(option("rate", OptionType::number, 0.0,
                            "records per second in all tasks together; 0 = as fast as possible"),
                     0, std::nullopt),
          with_range(option("accounts", OptionType::integer, std::int64_t{20},
                            "distinct account numbers"),
                     1, 1000000),
          optional_option("seed", OptionType::integer,
                          "same seed, same records (but the datetime); absent = random"),
      },
      "[pipelines.demo.source]\nplugin = \"datagen\"\nkind = \"transactions\"\ncount = 1000\n"
      "accounts = 20\nseed = 42");
  return p;
}

}  // namespace
}  // namespace pipehost::datagen

PIPEHOST_PLUGIN(pipehost::datagen::describe)
