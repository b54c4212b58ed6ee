// datagen source: a bounded or endless stream of fake records at a given rate, split
// between the pipeline's tasks (task i of n makes records i, i+n, i+2n, ...).
#pragma once
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <pipehost/sdk.hpp>

#include "generator.hpp"

namespace pipehost::datagen {

struct DatagenConfig {
  std::string kind = "transactions";
  std::int64_t count = 1000;
  double rate = 0;
  int accounts = 20;
  std::optional<std::int64_t> seed;
  bool key_by_id = false;
  std::string origin_service_id = "123456";
  std::string origin_service_type = "financial";
  std::vector<std::string> destinations = {"FINANCE", "MARKETING"};

  static void declare(OptionList<DatagenConfig>& o);
  void check(Checker& c) const;
};

class DatagenSource final : public Source {
 public:
  using Config = DatagenConfig;
  DatagenSource(const Config& config, Context& context);
  void start() override { started_ = std::chrono::steady_clock::now(); }
  PollResult poll(Batch& out, Millis max_wait) override;

 private:
  std::uint64_t share() const;  // how many of the `count` records this task makes
  std::uint64_t allowed_now(Millis max_wait);

  Context& context_;
  std::unique_ptr<Generator> generator_;
  std::uint64_t count_;
  double rate_;
  std::uint64_t task_ = 0;
  std::uint64_t tasks_ = 1;
  std::uint64_t made_ = 0;
  Counter* out_ = nullptr;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace pipehost::datagen
