// field_rules: checks each record's decoded value against rules from the config —
// required fields, types, patterns, ranges, allowed values — and rejects a record that
// breaks one with the rule it broke (dead letter), keeping the rest going.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include <pipehost/sdk.hpp>
#include <re2/re2.h>

namespace pipehost::rules {

struct FieldRulesConfig {
  std::vector<std::string> required;
  StringMap types;
  StringMap patterns;
  StringMap minimum;
  StringMap maximum;
  StringMap one_of;

  static void declare(OptionList<FieldRulesConfig>& o);
  void check(Checker& c) const;
};

class FieldRules final : public RecordTransform {
 public:
  using Config = FieldRulesConfig;
  FieldRules(const Config& config, Context& context);
  Verdict apply(Record& record) override;

 private:
  struct Rule {
    std::string field;
    std::vector<std::string> path;  // "a.b" reads field b of struct field a
    bool required = false;
    std::string type;  // "" when not checked
    std::unique_ptr<re2::RE2> pattern;
    std::string pattern_text;
    std::optional<double> minimum, maximum;
    std::string minimum_text, maximum_text;
    std::unordered_set<std::string> allowed;  // one_of: a long list costs no scan a record
  };
  Rule& rule(const std::string& field);
  const Value* find(const Rule& rule, const Value& value) const;
  std::string broken(const Rule& rule, const Value* v) const;  // "" when kept

  std::vector<Rule> rules_;
  Counter& rejected_;
};

}  // namespace pipehost::rules
