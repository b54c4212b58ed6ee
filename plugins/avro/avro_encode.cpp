#include "avro_encode.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "avro_decode.hpp"
#include "confluent_frame.hpp"

namespace pipehost::avro {

struct AvroEncode::Target {
  std::int32_t id = -1;
  Schema schema;
  SchemaNotes notes;
};

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read Avro schema file " + path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

void AvroEncodeConfig::declare(OptionList<AvroEncodeConfig>& o) {
  o.add("subject", &AvroEncodeConfig::subject,
        "Schema Registry subject whose schema the values are written with (a record's "
        "pipehost.subject header, set by the router, takes precedence)");
  o.add("topic", &AvroEncodeConfig::topic,
        "topic the records go to: the subject is \"<topic>-value\" (TopicNameStrategy); a "
        "record with a destination topic uses that topic's subject");
  o.add("schema_file", &AvroEncodeConfig::schema_file,
        "an .avsc file: its schema is registered under each subject used (kept if already "
        "there); default: the subject's latest version, which must exist");
}

void AvroEncodeConfig::check(Checker& c) const {
  (void)c.context().schema_registry();  // this stage uses it: validate --connect asks it
  if (!schema_file) return;
  try {
    load_schema_file(*schema_file);
  } catch (const std::exception& e) {
    c.problem("schema_file", e.what());
  }
}

AvroEncode::AvroEncode(const Config& config, Context& context) : context_(context) {
  if (config.schema_file) {
    schema_text_ = read_file(*config.schema_file);
    parse_schema(schema_text_);  // throws naming what is wrong
  }
  explicit_subject_ = config.subject.has_value();
  if (config.subject) default_subject_ = *config.subject;
  else if (config.topic) default_subject_ = *config.topic + "-value";
}

AvroEncode::~AvroEncode() {
  targets_.clear();
}

void AvroEncode::start() {
  if (!default_subject_.empty()) targets_.emplace(default_subject_, resolve(default_subject_));
}

RecordTransform::Verdict AvroEncode::apply(Record& record) {
  auto h = std::find_if(record.headers.begin(), record.headers.end(),
                        [](const Header& x) { return x.key == kSubjectHeader; });
  const bool has_header = h != record.headers.end();
  Target& t = target(record, has_header ? std::string_view(h->value) : std::string_view());
  // Into a string of its own, which becomes the payload only once the value is written
  // whole: a rejected record keeps the payload it came with (its dead letter shows it).
  std::string out;
  out.reserve(kFrameHeaderSize + last_size_);  // records of a topic are alike in size
  write_frame_header(out, t.id);
  from_value_.binary(record.value, t.schema.get(), out, t.notes);
  last_size_ = out.size() - kFrameHeaderSize;
  record.payload = std::move(out);
  if (has_header) record.headers.erase(h);  // only now: a rejected record keeps it
  return Verdict::keep;
}

AvroEncode::Target& AvroEncode::target(const Record& record, std::string_view from_header) {
  // The subject is the header's, else "<destination topic>-value", else the option's;
  // compared with the last one before it is spelled (no string per record).
  constexpr std::string_view kSuffix = "-value";
  std::string_view base = default_subject_;
  std::string_view suffix;
  if (!from_header.empty()) {
    base = from_header;
  } else if (!explicit_subject_ && !record.destination_topic.empty()) {
    base = record.destination_topic;
    suffix = kSuffix;
  }
  if (base.empty())
    throw InvalidRecord(
        "no subject for this record: it has no pipehost.subject header and no destination "
        "topic, and neither option subject nor topic is set");
  const std::string_view last = last_subject_;
  if (last_ && last.size() == base.size() + suffix.size() && last.starts_with(base) &&
      last.ends_with(suffix))
    return *last_;
  std::string subject = std::string(base) + std::string(suffix);
  auto it = targets_.find(subject);
  if (it == targets_.end()) it = targets_.emplace(subject, resolve(subject)).first;
  last_subject_ = std::move(subject);
  last_ = it->second.get();
  return *last_;
}

std::unique_ptr<AvroEncode::Target> AvroEncode::resolve(const std::string& subject) {
  auto t = std::make_unique<Target>();
  std::string text = schema_text_;
  if (text.empty()) {
    RegisteredSchema latest;
    const Status s = context_.schema_registry().latest_schema(subject, latest);
    if (s.code() == Code::invalid)
      throw FatalError("subject " + subject +
                       " has no schema in the registry: register one, or set schema_file so it "
                       "is registered at start");
    throw_if_error(s, "fetching the latest schema of subject " + subject);
    if (!latest.schema_type.empty() && latest.schema_type != "AVRO")
      throw FatalError("subject " + subject + " holds a " + latest.schema_type +
                       " schema, not AVRO");
    t->id = latest.id;
    text = latest.schema;
    std::vector<ReferencedSchema> referenced;
    Status refs =
        collect_references(context_.schema_registry(), latest, "reference", skip_no_reference, referenced);
    if (refs.code() == Code::invalid)
      throw FatalError("the latest schema of subject " + subject + ": " + refs.message());
    throw_if_error(refs, "fetching the references of the latest schema of subject " + subject);
    t->schema = parse_schema(text, referenced);
    for (const auto& r : referenced) t->notes.read(r.schema);
  } else {
    int id = -1;
    throw_if_error(context_.schema_registry().register_schema(subject, "AVRO", text, id),
          "registering the schema under subject " + subject);
    t->id = id;
  }
  if (!t->schema) t->schema = parse_schema(text);
  t->notes.read(text);
  context_.info("values for subject " + subject + " are written with schema id " +
                std::to_string(t->id));
  return t;
}

}  // namespace pipehost::avro
