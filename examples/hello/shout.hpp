// shout: a transform that upper-cases a string field of each record. Its options are a
// struct, declared once; the host validates a config against the declaration, documents
// it and builds Shout from the filled struct.
#pragma once
#include <cctype>

#include <pipehost/sdk.hpp>

namespace hello {

struct ShoutConfig {
  std::string field;
  int times = 1;

  static void declare(pipehost::OptionList<ShoutConfig>& o) {
    o.required("field", &ShoutConfig::field, "the string field to upper-case");
    o.add("times", &ShoutConfig::times, "how many exclamation marks to add").range(0, 10);
  }
  // Runs at `pipehost validate` and before `run`; reported at the option's line.
  void check(pipehost::Checker& c) const {
    if (field.empty()) c.problem("field", "must name a field");
  }
};

class Shout final : public pipehost::RecordTransform {
 public:
  using Config = ShoutConfig;
  Shout(const Config& config, pipehost::Context&) : field_(config.field), times_(config.times) {}

  Verdict apply(pipehost::Record& record) override {
    pipehost::Value* v = record.value.is<pipehost::Struct>()
                             ? record.value.as<pipehost::Struct>()->get(field_.name())
                             : nullptr;
    std::string* text = v ? v->as<std::string>() : nullptr;
    if (!text) throw pipehost::InvalidRecord("field '" + field_.name() + "' is not a string");
    for (char& c : *text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    text->append(static_cast<std::size_t>(times_), '!');
    return Verdict::keep;
  }

 private:
  pipehost::FieldReader field_;
  int times_;
};

}  // namespace hello

