// Test components that fail on purpose: at construction, start, or on the data path.
#include <pipehost/sdk.hpp>

#include <chrono>
#include <filesystem>
#include <thread>

namespace {
using namespace pipehost;

struct FaultyConfig {
  std::string fail_at;
  std::string while_exists;
  static void declare(OptionList<FaultyConfig>& o) {
    o.required("fail_at", &FaultyConfig::fail_at, "when to fail")
        .one_of({"construct", "start", "poll", "never"});
    o.add("while_exists", &FaultyConfig::while_exists,
          "fail only while this file exists (a fault that goes away); empty: always");
  }
};

class FaultySource final : public Source {
 public:
  using Config = FaultyConfig;
  FaultySource(const Config& config, Context&) : when_(config.fail_at) {
    if (!config.while_exists.empty() && !std::filesystem::exists(config.while_exists)) when_ = "never";
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

struct EveryConfig {
  std::int64_t every = 10;
  static void declare(OptionList<EveryConfig>& o) {
    o.add("every", &EveryConfig::every, "one record in this many").at_least(1);
  }
};

// Rejects every `every`-th record as invalid, as a decoder does with poison input.
class Poison final : public RecordTransform {
 public:
  using Config = EveryConfig;
  Poison(const Config& config, Context&) : every_(config.every) {}
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
  using Config = EveryConfig;
  Corrupt(const Config& config, Context&) : every_(config.every) {}
  Verdict apply(Record& record) override {
    if (++seen_ % every_ == 0) record.payload = "\x07not a framed message";
    return Verdict::keep;
  }

 private:
  std::int64_t every_;
  std::int64_t seen_ = 0;
};

struct NullFieldConfig {
  std::string field, when_field, suffix;
  static void declare(OptionList<NullFieldConfig>& o) {
    o.required("field", &NullFieldConfig::field, "field to null");
    o.required("when_field", &NullFieldConfig::when_field, "field to test");
    o.required("suffix", &NullFieldConfig::suffix, "text the tested field ends with");
  }
};

// Sets `field` of the decoded value to null when `when_field` ends with `suffix`: a
// record a sink must reject, chosen by content so every run picks the same ones.
class NullField final : public RecordTransform {
 public:
  using Config = NullFieldConfig;
  NullField(const Config& config, Context&)
      : field_(config.field), when_(config.when_field), suffix_(config.suffix) {}
  Verdict apply(Record& record) override {
    const Value* when = when_.read(record.value);
    Struct* s = record.value.as<Struct>();
    if (!when || !s) return Verdict::keep;
    std::string text = when->to_text();
    if (text.size() >= suffix_.size() &&
        text.compare(text.size() - suffix_.size(), suffix_.size(), suffix_) == 0)
      if (Value* v = s->get(field_)) *v = Value();
    return Verdict::keep;
  }

 private:
  std::string field_;
  FieldReader when_;
  std::string suffix_;
};

struct SleepConfig {
  std::int64_t ms = 1000;
  static void declare(OptionList<SleepConfig>& o) {
    o.add("ms", &SleepConfig::ms, "how long each batch takes").at_least(0);
  }
};

// Takes `ms` per batch: a stage call that looks stuck.
class Sleepy final : public Transform {
 public:
  using Config = SleepConfig;
  Sleepy(const Config& config, Context&) : ms_(config.ms) {}
  void process(Batch&) override { std::this_thread::sleep_for(std::chrono::milliseconds(ms_)); }

 private:
  std::int64_t ms_;
};

struct NoOptions {
  static void declare(OptionList<NoOptions>&) {}
};

// Takes every batch and never says it is durable: a sink whose acknowledgements stall.
class Silent final : public Sink {
 public:
  using Config = NoOptions;
  Silent(const Config&, Context&) {}
  void write(Batch&, BatchDone) override {}
};

PluginSpec describe() {
  PluginSpec p{"faulty", "0.0.1", "Components that fail on purpose, for tests"};
  p.add_source<FaultySource>("faulty", "Fails where told",
                             "[pipelines.x.source]\nplugin = \"faulty\"\nfail_at = \"start\"");
  p.add_transform<Poison>("poison", "Rejects every n-th record",
                          "[[pipelines.x.transforms]]\nplugin = \"poison\"\nevery = 5");
  p.add_transform<Corrupt>("corrupt", "Garbles the payload of every n-th record",
                           "[[pipelines.x.transforms]]\nplugin = \"corrupt\"\nevery = 5");
  p.add_transform<NullField>(
      "null_field", "Nulls a field of records whose other field ends with a suffix",
      "[[pipelines.x.transforms]]\nplugin = \"null_field\"\nfield = \"amount\"\n"
      "when_field = \"transaction_id\"\nsuffix = \"7\"");
  p.add_transform<Sleepy>("sleepy", "Sleeps in every batch",
                          "[[pipelines.x.transforms]]\nplugin = \"sleepy\"\nms = 2000");
  p.add_sink<Silent>("silent", "Never acknowledges", "[pipelines.x.sink]\nplugin = \"silent\"");
  return p;
}
}  // namespace

PIPEHOST_PLUGIN(describe)
