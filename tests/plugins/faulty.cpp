// Test components that fail on purpose: at construction, start, or on the data path.
#include <pipehost/sdk.hpp>

namespace {
using namespace pipehost;

class FaultySource final : public Source {
 public:
  FaultySource(const Options& options, Context&) : when_(options.string("fail_at")) {
    if (when_ == "construct") throw std::runtime_error("faulty source refuses to be built");
  }
  void start() override {
    if (when_ == "start") throw std::runtime_error("faulty source cannot start");
  }
  PollResult poll(Batch& out, Millis) override {
    if (when_ == "poll" && ++polls_ > 2) throw std::runtime_error("faulty source broke mid-run");
    Record r;
    r.key = "k";
    out.records.push_back(r);
    return PollResult::more;
  }

 private:
  std::string when_;
  int polls_ = 0;
};

// Rejects every `every`-th record as invalid, as a decoder does with poison input.
class Poison final : public RecordTransform {
 public:
  Poison(const Options& options, Context&) : every_(options.integer("every")) {}
  Verdict apply(Record&) override {
    if (++seen_ % every_ == 0) throw InvalidRecord("poison record " + std::to_string(seen_));
    return Verdict::keep;
  }

 private:
  std::int64_t every_;
  std::int64_t seen_ = 0;
};

// Replaces the payload of every `every`-th record with bytes no decoder accepts.
class Corrupt final : public RecordTransform {
 public:
  Corrupt(const Options& options, Context&) : every_(options.integer("every")) {}
  Verdict apply(Record& record) override {
    if (++seen_ % every_ == 0) record.payload = "\x07not a framed message";
    return Verdict::keep;
  }

 private:
  std::int64_t every_;
  std::int64_t seen_ = 0;
};

// Sets `field` of the decoded value to null when `when_field` ends with `suffix`: a
// record a sink must reject, chosen by content so every run picks the same ones.
class NullField final : public RecordTransform {
 public:
  NullField(const Options& options, Context&)
      : field_(options.string("field")), when_(options.string("when_field")),
        suffix_(options.string("suffix")) {}
  Verdict apply(Record& record) override {
    const Value* when = when_.read(record.value);
    Struct* s = record.value.as<Struct>();
    if (!when || !s) return Verdict::keep;
    std::string text = when->to_text();
    if (text.size() >= suffix_.size() && text.compare(text.size() - suffix_.size(), suffix_.size(), suffix_) == 0)
      if (Value* v = s->get(field_)) *v = Value();
    return Verdict::keep;
  }

 private:
  std::string field_;
  FieldReader when_;
  std::string suffix_;
};

PluginSpec describe() {
  PluginSpec p{"faulty", "0.0.1", "Components that fail on purpose, for tests", {}};
  p.add_source<FaultySource>(
      "faulty", "Fails where told",
      {with_allowed(required_option("fail_at", OptionType::string, "when to fail"),
                    {"construct", "start", "poll", "never"})},
      "[pipelines.x.source]\nplugin = \"faulty\"\nfail_at = \"start\"");
  p.add_transform<Poison>("poison", "Rejects every n-th record",
                          {with_range(option("every", OptionType::integer, std::int64_t{10},
                                             "reject one record in this many"),
                                      1, std::nullopt)},
                          "[[pipelines.x.transforms]]\nplugin = \"poison\"\nevery = 5");
  p.add_transform<Corrupt>("corrupt", "Garbles the payload of every n-th record",
                           {with_range(option("every", OptionType::integer, std::int64_t{10},
                                              "garble one record in this many"),
                                       1, std::nullopt)},
                           "[[pipelines.x.transforms]]\nplugin = \"corrupt\"\nevery = 5");
  p.add_transform<NullField>(
      "null_field", "Nulls a field of records whose other field ends with a suffix",
      {required_option("field", OptionType::string, "field to null"),
       required_option("when_field", OptionType::string, "field to test"),
       required_option("suffix", OptionType::string, "text the tested field ends with")},
      "[[pipelines.x.transforms]]\nplugin = \"null_field\"\nfield = \"amount\"\n"
      "when_field = \"transaction_id\"\nsuffix = \"7\"");
  return p;
}
}  // namespace

PIPEHOST_PLUGIN(describe)
