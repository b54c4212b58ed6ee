// An out-of-tree plugin: a transform that upper-cases a string field of each record.
// Build it against the installed SDK (see CMakeLists.txt beside it) and point
// pipehost at the folder with --plugin-path.
#include <cctype>

#include <pipehost/sdk.hpp>

namespace {

class Shout final : public pipehost::RecordTransform {
 public:
  Shout(const pipehost::Options& options, pipehost::Context&) : field_(options.string("field")) {}

  Verdict apply(pipehost::Record& record) override {
    auto* s = record.value.as<pipehost::Struct>();
    pipehost::Value* v = s ? s->get(field_) : nullptr;
    auto* text = v ? v->as<std::string>() : nullptr;
    if (!text) throw pipehost::InvalidRecord("field '" + field_ + "' is not a string");
    for (char& c : *text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return Verdict::keep;
  }

 private:
  std::string field_;
};

pipehost::PluginSpec describe() {
  pipehost::PluginSpec p{"hello", "1.0.0", "An example plugin built outside the main tree", {}};
  p.add_transform<Shout>("shout", "Upper-cases a string field",
                         {pipehost::required_option("field", pipehost::OptionType::string,
                                                    "the field to upper-case")},
                         "[[pipelines.demo.transforms]]\nplugin = \"shout\"\nfield = \"name\"");
  return p;
}

}  // namespace

PIPEHOST_PLUGIN(describe)
