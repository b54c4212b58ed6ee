// count_by: per batch, one record per distinct value of a field, with how many records
// had it (or the sum of another field): a sink then writes one row per value per batch
// instead of one per record. The batch's source positions are untouched, so an
// exactly-once sink still stores them with the counts.
#pragma once
#include <optional>
#include <string>

#include <pipehost/sdk.hpp>

namespace pipehost::aggregate {

struct CountByConfig {
  std::string group_by;
  std::optional<std::string> sum_field;
  std::string as = "count";

  static void declare(OptionList<CountByConfig>& o);
  void check(Checker& c) const;
};

class CountBy final : public Transform {
 public:
  using Config = CountByConfig;
  CountBy(const Config& config, Context& context);
  void process(Batch& batch) override;

 private:
  FieldReader group_by_;
  std::optional<FieldReader> sum_;
  std::shared_ptr<const StructSchema> schema_;
  Counter& out_;
};

}  // namespace pipehost::aggregate
