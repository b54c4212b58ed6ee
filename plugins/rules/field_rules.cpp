#include "field_rules.hpp"

#include <cmath>

#include <pipehost/json.hpp>
#include <pipehost/time.hpp>
#include <pipehost/utf8.hpp>

namespace pipehost::rules {
namespace {

const std::vector<std::string> kTypes = {"string", "integer", "number", "boolean", "timestamp", "list", "struct"};

std::optional<double> number_of(const std::string& text) {
  try {
    std::size_t used = 0;
    double d = std::stod(text, &used);
    if (used == text.size() && std::isfinite(d)) return d;  // a NaN bound would turn the rule off
  } catch (...) {
  }
  return std::nullopt;
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    std::size_t end = text.find(separator, start);
    std::string part = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    while (!part.empty() && part.front() == ' ') part.erase(part.begin());
    while (!part.empty() && part.back() == ' ') part.pop_back();
    out.push_back(part);
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}

bool has_type(const Value& v, const std::string& type) {
  if (type == "string") return v.is<std::string>();
  if (type == "integer") return v.is<std::int64_t>();
  if (type == "number") return v.is<std::int64_t>() || v.is<double>();
  if (type == "boolean") return v.is<bool>();
  if (type == "list") return v.is<List>();
  if (type == "struct") return v.is<Struct>();
  if (type == "timestamp") {
    if (v.is<Timestamp>()) return true;
    const auto* s = v.as<std::string>();
    return s && time::parse_rfc3339(*s).has_value();
  }
  return false;
}

// A value inside a reason: at most 40 bytes, not cut inside a character, a string quoted
// and escaped as JSON (a NUL would end the reason where it passes as a C string, a
// newline would start a line of its own in the log).
std::string shown(const Value& v) {
  std::string text = utf8::abbreviated(v.to_text(), 40);
  // A double that holds a whole number as sent ("version": 1.0): not shown as 1, which
  // would read as an integer refused for not being one.
  if (const auto* d = v.as<double>(); d && std::isfinite(*d) && text.find_first_of(".eE") == std::string::npos)
    text += ".0";
  if (!v.is<std::string>()) return text;
  std::string quoted;
  json::append_string(text, quoted);
  return quoted;
}

}  // namespace

void FieldRulesConfig::declare(OptionList<FieldRulesConfig>& o) {
  o.add("required", &FieldRulesConfig::required,
        "fields that must be present and not null (\"a.b\": field b of struct a)");
  o.add("types", &FieldRulesConfig::types,
        "field = type: string, integer, number (integer or not), boolean, timestamp (a "
        "timestamp, or an RFC 3339 string as Go's encoding/json takes it: T and Z upper case, "
        "no leap second), list or struct");
  o.add("patterns", &FieldRulesConfig::patterns,
        "field = regular expression the whole string must match (RE2 syntax: Perl's without "
        "look-around or back-references; matched in time linear in the string)");
  o.add("minimum", &FieldRulesConfig::minimum, "field = the smallest number allowed");
  o.add("maximum", &FieldRulesConfig::maximum, "field = the largest number allowed");
  o.add("one_of", &FieldRulesConfig::one_of, "field = the allowed values, comma-separated");
}

void FieldRulesConfig::check(Checker& c) const {
  for (const auto& [field, type] : types)
    if (std::find(kTypes.begin(), kTypes.end(), type) == kTypes.end())
      c.problem("types", "field '" + field + "' has type '" + type +
                             "'; types: string, integer, number, boolean, timestamp, list, struct");
  for (const auto& [field, pattern] : patterns) {
    re2::RE2 check(pattern, re2::RE2::Quiet);
    if (!check.ok())
      c.problem("patterns", "field '" + field + "': '" + pattern + "' is not a regular expression RE2 accepts (" +
                                check.error() + "); RE2 has Perl's syntax without look-around or back-references");
  }
  for (const auto* bounds : {&minimum, &maximum})
    for (const auto& [field, text] : *bounds)
      if (!number_of(text))
        c.problem(bounds == &minimum ? "minimum" : "maximum",
                  "field '" + field + "': '" + text + "' is not a finite number");
  if (required.empty() && types.empty() && patterns.empty() && minimum.empty() && maximum.empty() &&
      one_of.empty())
    c.problem("", "no rules: set at least one of required, types, patterns, minimum, maximum, one_of");
}

FieldRules::Rule& FieldRules::rule(const std::string& field) {
  for (auto& r : rules_)
    if (r.field == field) return r;
  Rule& r = rules_.emplace_back();
  r.field = field;
  r.path = split(field, '.');
  return r;
}

FieldRules::FieldRules(const Config& config, Context& context)
    : rejected_(context.counter("records_rejected")) {
  for (const auto& f : config.required) rule(f).required = true;
  for (const auto& [f, type] : config.types) rule(f).type = type;
  // RE2, not std::regex: libstdc++'s matcher recurses once per character, so a field of
  // ~50 KB overflowed the stack (a crash on every restart, at the same record); RE2 matches
  // in time linear in the string, without recursion.
  for (const auto& [f, pattern] : config.patterns) {
    rule(f).pattern = std::make_unique<re2::RE2>(pattern, re2::RE2::Quiet);
    rule(f).pattern_text = pattern;
  }
  for (const auto& [f, text] : config.minimum) {
    rule(f).minimum = number_of(text);
    rule(f).minimum_text = text;
  }
  for (const auto& [f, text] : config.maximum) {
    rule(f).maximum = number_of(text);
    rule(f).maximum_text = text;
  }
  for (const auto& [f, list] : config.one_of)
    for (auto& value : split(list, ',')) rule(f).allowed.insert(std::move(value));
}

const Value* FieldRules::find(const Rule& rule, const Value& value) const {
  const Value* at = &value;
  for (const auto& name : rule.path) {
    at = at->field(name);
    if (!at) return nullptr;
  }
  return at;
}

std::string FieldRules::broken(const Rule& r, const Value* v) const {
  auto field = [&] { return "field '" + r.field + "'"; };  // built on failure only
  if (!v || v->is_null()) return r.required ? field() + (v ? " is null" : " is missing") : "";
  if (!r.type.empty() && !has_type(*v, r.type))
    return field() + " is " + shown(*v) + ", not " + (r.type == "integer" ? "an " : "a ") + r.type;
  if (r.pattern) {
    const auto* s = v->as<std::string>();
    if (!s) return field() + " is " + shown(*v) + ", not a string: a pattern matches strings";
    if (!re2::RE2::FullMatch(*s, *r.pattern))
      return field() + " is " + shown(*v) + ", which does not match " + r.pattern_text;
  }
  if (r.minimum || r.maximum) {
    std::optional<double> d;
    if (const auto* i = v->as<std::int64_t>()) d = static_cast<double>(*i);
    else if (const auto* x = v->as<double>()) d = *x;
    if (!d) return field() + " is " + shown(*v) + ", not a number";
    if (!std::isfinite(*d)) return field() + " is " + shown(*v) + ", not a finite number";  // NaN compares false
    if (r.minimum && *d < *r.minimum) return field() + " is " + shown(*v) + ", below the minimum " + r.minimum_text;
    if (r.maximum && *d > *r.maximum) return field() + " is " + shown(*v) + ", above the maximum " + r.maximum_text;
  }
  if (!r.allowed.empty()) {
    const std::string text = v->to_text();
    if (!r.allowed.count(text))
      return field() + " is " + shown(*v) + ", not one of the allowed values";
  }
  return "";
}

RecordTransform::Verdict FieldRules::apply(Record& record) {
  for (const auto& r : rules_) {
    std::string why = broken(r, find(r, record.value));
    if (!why.empty()) {
      rejected_.add();
      throw InvalidRecord("field_rules: " + why);
    }
  }
  return Verdict::keep;
}

}  // namespace pipehost::rules
