#include "router.hpp"

#include <pipehost/kafka_topic_name.hpp>

#include <algorithm>
#include <chrono>
#include <set>

#include <pipehost/utf8.hpp>

namespace pipehost::router {
namespace {
// A rejection's reason names the first destinations only: with thousands, every unknown
// record built and carried a list of all of them.
constexpr std::size_t kNamedInMessages = 10;
}  // namespace

void RouterConfig::declare(OptionList<RouterConfig>& o) {
  o.required("field", &RouterConfig::field,
             "the field of the value whose text picks the destination (case-sensitive)");
  o.required("topics", &RouterConfig::topics,
             "destination -> output topic; a record whose field is none of these is rejected");
  o.add("subjects", &RouterConfig::subjects,
        "destination -> Schema Registry subject the encoder writes with (every destination "
        "of topics needs one when this is set)");
  o.add("fields", &RouterConfig::fields,
        "output field -> input field it is copied from; with fields, constants or now_ms the "
        "value is rebuilt from these alone (default: the value is kept as it is)");
  o.add("constants", &RouterConfig::constants, "output field -> a constant string");
  o.add("now_ms", &RouterConfig::now_ms, "output fields set to the time of routing, epoch ms");
}

void RouterConfig::check(Checker& c) const {
  if (topics.empty()) c.problem("topics", "no destination: add at least one, e.g. { A = \"topic.a\" }");
  for (const auto& [name, topic] : topics) {
    if (topic.empty())
      c.problem("topics", "destination " + name + " has an empty output topic");
    else if (!is_kafka_topic_name(topic))
      c.problem("topics", "destination " + name + ": '" + topic +
                              "' is not a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -, not . or ..)");
    if (!subjects.empty() && !subjects.count(name))
      c.problem("subjects", "destination " + name + " has an output topic but no output subject: add " +
                                name + " = \"<subject>\" to subjects");
  }
  for (const auto& [name, subject] : subjects)
    if (!topics.count(name))
      c.problem("topics", "destination " + name + " has an output subject but no output topic: add " +
                              name + " = \"<topic>\" to topics");
  std::set<std::string> outputs;
  auto output = [&](const std::string& option, const std::string& name) {
    if (!outputs.insert(name).second)
      c.problem(option, "output field " + name + " is set twice (fields, constants and now_ms "
                        "must name different output fields)");
  };
  for (const auto& [to, from] : fields) output("fields", to);
  for (const auto& [to, text] : constants) output("constants", to);
  for (const auto& to : now_ms) output("now_ms", to);
}

Router::Router(const Config& config, Context& context)
    : field_reader_(config.field), field_(config.field) {
  for (const auto& [name, topic] : config.topics) {
    Destination d{name, topic, "", &context.counter("routed_" + name)};
    if (auto s = config.subjects.find(name); s != config.subjects.end()) d.subject = s->second;
    if (destinations_.size() < kNamedInMessages) known_ += (known_.empty() ? "" : ", ") + name;
    by_name_.emplace(name, destinations_.size());
    destinations_.push_back(std::move(d));
  }
  if (destinations_.size() > kNamedInMessages)
    known_ += ", ... " + std::to_string(destinations_.size()) + " in all";
  reshape_ = !config.fields.empty() || !config.constants.empty() || !config.now_ms.empty();
  std::vector<std::string> names;
  for (const auto& [to, from] : config.fields) {
    copies_.push_back({from, names.size()});
    names.push_back(to);
  }
  for (auto& c : copies_)
    c.only = std::count_if(copies_.begin(), copies_.end(),
                           [&](const Copy& o) { return o.from == c.from; }) == 1;
  for (const auto& [to, text] : config.constants) {
    constants_.emplace_back(names.size(), text);
    names.push_back(to);
  }
  for (const auto& to : config.now_ms) {
    now_fields_.push_back(names.size());
    names.push_back(to);
  }
  schema_ = StructSchema::make(std::move(names));
}

const Router::Destination* Router::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &destinations_[it->second];
}

namespace {
// A value in a rejection's reason: the start of it (the reason travels as a dead letter's
// header, and a whole value there could make the letter too large to write).
std::string shown(std::string_view text) { return utf8::abbreviated(text, 60); }
}  // namespace

RecordTransform::Verdict Router::apply(Record& record) {
  const Value* v = field_reader_.read(record.value);
  if (!v) throw InvalidRecord("no field " + field_ + " to route by");
  // A string as it is; an integer or a boolean by its text ("7", "true"), as the option says.
  const auto* string = v->as<std::string>();
  std::string text_of_other;
  if (!string) {
    if (!v->is<std::int64_t>() && !v->is<bool>())
      throw InvalidRecord("field " + field_ + " is not a string, an integer or a boolean: " + shown(v->to_text()));
    text_of_other = v->to_text();
  }
  const std::string& text = string ? *string : text_of_other;
  const Destination* d = find(text);
  if (!d)
    throw InvalidRecord(field_ + " '" + shown(text) + "' is not a routed destination (" + known_ +
                        "): add it to the router's topics");
  if (reshape_) reshape(record.value);
  record.destination_topic = d->topic;
  // The subject is the router's to say: one the input record carried is dropped, or the
  // encoder would take that one (and a record could pick its own schema).
  std::erase_if(record.headers, [](const Header& h) { return h.key == kSubjectHeader; });
  if (!d->subject.empty()) record.headers.push_back({std::string(kSubjectHeader), d->subject});
  d->routed->add();
  return Verdict::keep;
}

// Every input field is found before any is moved: a rejected record keeps its value.
const std::vector<std::size_t>& Router::sources(const Struct& in) {
  auto missing = [&](const Copy& c) {
    return InvalidRecord("no field " + c.from + " to copy into " + schema_->names()[c.to]);
  };
  if (!in.schema || in.schema != input_schema_) {
    std::vector<std::size_t> found;
    for (const auto& c : copies_) {
      const auto at = in.schema ? in.schema->index_of(c.from) : std::nullopt;
      if (!at) throw missing(c);
      found.push_back(*at);
    }
    sources_ = std::move(found);
    input_schema_ = in.schema;
  }
  for (std::size_t i = 0; i < sources_.size(); ++i)
    if (sources_[i] >= in.fields.size()) throw missing(copies_[i]);  // a struct short of its names
  return sources_;
}

// Rebuilt in the input's own struct, the copied fields moved aside and back into their
// output places (strings trade buffers): once the storage has grown, a record costs no
// allocation here, and the decoder gets this struct back for the next batch.
void Router::reshape(Value& in) {
  static const Struct kNoFields;
  Struct* s = in.as<Struct>();
  const std::vector<std::size_t>& from = sources(s ? *s : kNoFields);  // before anything moves
  if (!s) s = &std::get<Struct>(in.variant() = Struct{});
  moved_.resize(copies_.size());
  for (std::size_t i = 0; i < copies_.size(); ++i) {
    Value& source = s->fields[from[i]];
    if (copies_[i].only) moved_[i] = std::move(source);
    else moved_[i] = source;
  }
  s->fields.resize(schema_->names().size());
  for (std::size_t i = 0; i < copies_.size(); ++i) s->fields[copies_[i].to] = std::move(moved_[i]);
  for (const auto& [to, text] : constants_) s->fields[to].assign_string(text);
  if (!now_fields_.empty()) {
    const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
    for (auto to : now_fields_) s->fields[to].set(now);
  }
  if (s->schema != schema_) s->schema = schema_;
}

}  // namespace pipehost::router
