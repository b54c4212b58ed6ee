#include "count_by.hpp"

#include <cmath>

#include <unordered_map>

namespace pipehost::aggregate {

void CountByConfig::declare(OptionList<CountByConfig>& o) {
  o.required("group_by", &CountByConfig::group_by, "the field whose values are counted");
  o.add("sum_field", &CountByConfig::sum_field,
        "sum this numeric field per value instead of counting records");
  o.add("as", &CountByConfig::as, "the name of the output field holding the count (or sum)")
      .pattern(".+");
}

// The output record holds the group's value under group_by's name and the count under
// `as`: one name for both would hide one of them from every sink (grouping by a field
// named "count" with the default `as`).
void CountByConfig::check(Checker& c) const {
  if (as == group_by)
    c.problem("as", "as = \"" + as + "\" is also group_by's name: the count would hide the value it counts; "
                    "name the count otherwise (e.g. as = \"" + as + "_count\")");
}

CountBy::CountBy(const Config& config, Context& context)
    : group_by_(config.group_by),
      schema_(StructSchema::make({config.group_by, config.as})),
      out_(context.counter("records_out")) {
  if (config.sum_field) sum_.emplace(*config.sum_field);
}

void CountBy::process(Batch& batch) {
  struct Group {
    Value key;
    std::int64_t count = 0;
    double sum = 0;
    bool integral = true;
  };
  std::vector<Group> groups;  // first-seen order
  std::unordered_map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < batch.records.size(); ++i) {
    const Value* key = group_by_.read(batch.records[i].value);
    if (!key || key->is_null() || key->is<List>() || key->is<Struct>()) {
      batch.reject(i, "count_by: field '" + group_by_.name() + "' is " +
                          (!key || key->is_null() ? "missing" : "not a scalar"));
      continue;
    }
    std::int64_t add = 1;
    double add_double = 1;
    bool integral = true;
    if (sum_) {
      const Value* amount = sum_->read(batch.records[i].value);
      if (const auto* n = amount ? amount->as<std::int64_t>() : nullptr) {
        add = *n;
        add_double = static_cast<double>(*n);
      } else if (const auto* d = amount ? amount->as<double>() : nullptr) {
        add_double = *d;
        integral = false;
      } else {
        batch.reject(i, "count_by: field '" + sum_->name() + "' is not a number");
        continue;
      }
    }
    if (!std::isfinite(add_double)) {  // only a summed double can be
      batch.reject(i, "count_by: field '" + sum_->name() + "' is not a finite number");
      continue;
    }
    // By kind and text: the int 1, the string "1" and the double 1.0 are three keys (one
    // group took them all, under the first one's kind).
    std::string group_key = key->to_text();
    group_key.push_back(static_cast<char>('0' + key->variant().index()));
    auto [it, fresh] = index.try_emplace(std::move(group_key), groups.size());
    if (fresh) groups.push_back({*key});
    Group& g = groups[it->second];
    std::int64_t count = 0;
    if (__builtin_add_overflow(g.count, add, &count) || !std::isfinite(g.sum + add_double)) {
      batch.reject(i, "count_by: the " + (sum_ ? "sum of '" + sum_->name() + "'" : std::string("count")) +
                          " for this key would pass the largest number a total can hold");
      continue;
    }
    g.count = count;
    g.sum += add_double;
    g.integral = g.integral && integral;
  }
  // The batch's records become the groups (dropped, their storage goes back to the
  // batch for reuse); spans (its positions) stay as they are.
  for (std::size_t i = 0; i < batch.records.size(); ++i) batch.drop(i);
  batch.compact();
  for (auto& g : groups) {
    Record& r = batch.add();
    Value total = !sum_ || g.integral ? Value(g.count) : Value(g.sum);
    r.value = Struct{schema_, {std::move(g.key), std::move(total)}};
  }
  out_.add(groups.size());
}

}  // namespace pipehost::aggregate
