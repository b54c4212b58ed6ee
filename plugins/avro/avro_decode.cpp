#include "avro_decode.hpp"

#include <fstream>
#include <sstream>

#include "confluent_frame.hpp"

namespace pipehost::avro {

// A schema the registry does not know, or one Avro cannot use, is remembered with its
// error so it is not asked for on every record; an unknown id is asked for again after a
// while (a registry that lags behind its producers).
struct AvroDecode::Writer {
  Schema schema;
  Schema reader;         // the reader schema without `filled`'s fields, when it has some
  Iface iface;           // the writer's generic class, or the resolved writer
  // With a reader schema (else null, and read_binary reads the value):
  Iface reader_iface;    // the reader's generic class
  std::unique_ptr<OwnedValue> result;     // the reader's value
  std::unique_ptr<OwnedValue> read_into;  // what avro_value_read fills (freed first)
  std::string error;
  Clock::time_point retry_after = Clock::time_point::max();
  SchemaNotes notes;  // its logical types (Avro C drops them)
  // Reader fields the writer lacks, filled from their defaults after Avro C's read: per
  // record full name, the reader's StructSchema and, per field, where it is in the struct
  // read (-1: its default).
  struct Filled {
    std::shared_ptr<const StructSchema> schema;
    std::vector<int> from;
    std::vector<Value> defaults;
    std::size_t read = 0;  // fields in the struct read
  };
  std::map<std::string, Filled, std::less<>> filled;
};

Schema load_schema_file(const std::string& path, SchemaNotes* notes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read Avro schema file " + path);
  std::stringstream text;
  text << in.rdbuf();
  try {
    Schema schema = parse_schema(text.str());
    if (notes) notes->read(text.str());
    return schema;
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

void AvroDecodeConfig::declare(OptionList<AvroDecodeConfig>& o) {
  o.add("reader_schema_file", &AvroDecodeConfig::reader_schema_file,
        "an .avsc file: values are read as this schema, resolved against the writer's "
        "(fields it lacks dropped, numbers promoted, a field the writer lacks given its "
        "default; one without a default must be in the writer's schema); default: as written");
  o.add("max_record_bytes", &AvroDecodeConfig::max_record_bytes,
        "larger payloads are rejected without being decoded")
      .at_least(5);
  o.add("max_elements", &AvroDecodeConfig::max_elements,
        "most array items plus map entries plus record fields in one record; more is rejected")
      .at_least(1);
}

void AvroDecodeConfig::check(Checker& c) const {
  (void)c.context().schema_registry();  // this stage uses it: validate --connect asks it
  if (!reader_schema_file) return;
  try {
    load_schema_file(*reader_schema_file);
  } catch (const std::exception& e) {
    c.problem("reader_schema_file", e.what());
  }
}

AvroDecode::AvroDecode(const Config& config, Context& context)
    : context_(context),
      reader_schema_file_(config.reader_schema_file.value_or("")),
      max_record_bytes_(static_cast<std::size_t>(config.max_record_bytes)) {
  limits_.max_elements = static_cast<std::uint64_t>(config.max_elements);
  if (config.reader_schema_file) reader_schema_ = load_schema_file(*config.reader_schema_file, &reader_notes_);
  reader_ = avro_reader_memory("", 0);
  if (!reader_) throw std::runtime_error("avro: " + avro_error());
}

AvroDecode::~AvroDecode() {
  writers_.clear();
  if (reader_) avro_reader_free(reader_);
}

RecordTransform::Verdict AvroDecode::apply(Record& record) {
  if (record.payload.is_null()) throw InvalidRecord("null value (a tombstone): there is nothing to decode");
  const std::string_view payload = record.payload;
  if (payload.size() > max_record_bytes_)
    throw InvalidRecord("payload of " + std::to_string(payload.size()) +
                        " bytes is larger than max_record_bytes (" +
                        std::to_string(max_record_bytes_) + ")");
  const std::int32_t id = frame_schema_id(payload);
  if (id != last_id_ || !last_ || last_->retry_after != Clock::time_point::max()) {
    last_ = &writer(id);
    last_id_ = id;
  }
  Writer& w = *last_;
  if (!w.error.empty()) throw InvalidRecord(w.error);
  to_value_.use_notes(reader_schema_ ? &reader_notes_ : &w.notes);
  const std::string_view data = payload.substr(kFrameHeaderSize);
  auto refused = [&](const InvalidRecord& e) {
    return InvalidRecord("schema id " + std::to_string(id) + ": " + e.what());
  };
  if (!w.result) {  // read as written: one pass of our own (see read_binary)
    try {
      read_binary(w.schema.get(), data, limits_, to_value_, record.value_to_overwrite());
    } catch (const InvalidRecord& e) {
      record.value = Value();  // half written
      throw refused(e);
    } catch (...) {
      record.value = Value();
      throw;
    }
    return Verdict::keep;
  }
  // With a reader schema: checked, then read by Avro C's resolution.
  try {
    check_binary(w.schema.get(), data, limits_);
  } catch (const InvalidRecord& e) {
    throw refused(e);
  }
  avro_reader_memory_set_source(reader_, data.data(), static_cast<int64_t>(data.size()));
  avro_value_reset(&w.result->get());
  if (avro_value_read(reader_, &w.read_into->get()) != 0)
    throw InvalidRecord("schema id " + std::to_string(id) + ": " + avro_error());
  // Into the storage an earlier record decoded into (see Record::value_to_overwrite).
  try {
    to_value_.into(w.result->get(), record.value_to_overwrite());
  } catch (...) {
    record.value = Value();  // half written
    throw;
  }
  if (!w.filled.empty()) fill_defaults(w, record.value);
  return Verdict::keep;
}

// Inner records first: a filled struct's fields are moved as they are.
void AvroDecode::fill_defaults(const Writer& w, Value& v) {
  if (auto* list = v.as<List>()) {
    for (auto& item : *list) fill_defaults(w, item);
    return;
  }
  auto* s = v.as<Struct>();
  if (!s) return;
  for (auto& field : s->fields) fill_defaults(w, field);
  if (!s->schema) return;
  auto it = w.filled.find(s->schema->type_name());
  if (it == w.filled.end()) return;
  const Writer::Filled& f = it->second;
  if (s->fields.size() != f.read) return;  // not a struct read without the fields (never, but bounds)
  std::vector<Value> fields;
  fields.reserve(f.from.size());
  for (std::size_t i = 0; i < f.from.size(); ++i)
    fields.push_back(f.from[i] >= 0 ? std::move(s->fields[static_cast<std::size_t>(f.from[i])]) : f.defaults[i]);
  s->fields = std::move(fields);
  s->schema = f.schema;
}

AvroDecode::Writer& AvroDecode::writer(std::int32_t id) {
  auto it = writers_.find(id);
  if (it != writers_.end() && it->second->retry_after > Clock::now()) return *it->second;
  auto w = std::make_unique<Writer>();
  RegisteredSchema registered;
  std::vector<ReferencedSchema> referenced;
  w->error = unknown_budget_.fetch(context_.schema_registry(), id, "reference", skip_no_reference, registered,
                                   referenced, w->retry_after);
  if (w->error.empty()) load(id, registered, referenced, *w);
  if (last_id_ == id) last_ = nullptr;  // the entry it points at is replaced
  if (w->error.empty() && it == writers_.end() && ++known_ids_ > kMostSchemas) {
    // Thousands of ids (a subject per tenant) would grow each task without bound:
    // forgotten all at once, with the record shapes read under them (one parse per id
    // again; the registry's answers are cached in the process, and decoded values hold
    // their StructSchema themselves).
    writers_.clear();
    to_value_.forget_records();
    last_ = nullptr;
    known_ids_ = 1;
    unknown_ids_ = 0;
  }
  if (!w->error.empty() && ++unknown_ids_ > kMostUnknownIds) {
    // Records with ever-new ids (garbage framing) must not grow the cache without bound.
    std::erase_if(writers_, [](const auto& e) { return !e.second->error.empty(); });
    last_ = nullptr;
    unknown_ids_ = 1;
  }
  Writer& entry = *w;
  writers_[id] = std::move(w);
  return entry;
}

void AvroDecode::load(std::int32_t id, const RegisteredSchema& registered,
                      const std::vector<ReferencedSchema>& referenced, Writer& w) {
  const std::string which = "schema id " + std::to_string(id);
  if (!registered.schema_type.empty() && registered.schema_type != "AVRO") {
    w.error = which + " is " + registered.schema_type + ", not AVRO: the record was written in another format " +
              "(decode it with " + (registered.schema_type == "PROTOBUF" ? "protobuf_decode" : "json_decode") + ")";
    return;
  }
  try {
    w.schema = parse_schema(registered.schema, referenced);
  } catch (const std::exception& e) {
    w.error = which + ": " + e.what();
    return;
  }
  try {
    for (const auto& r : referenced) w.notes.read(r.schema);
    w.notes.read(registered.schema);
  } catch (const std::exception& e) {  // the schema's records are rejected, naming it
    w.error = which + ": " + e.what();
    return;
  }
  if (!reader_schema_) {
    // Read by read_binary; Avro C's class is made only to refuse what it cannot hold.
    w.iface.reset(avro_generic_class_from_schema(w.schema.get()));
    if (!w.iface) w.error = which + ": " + avro_error();
    return;
  }
  if (std::string why = enums_read_by_position(w.schema.get(), reader_schema_.get()); !why.empty()) {
    w.error = which + " cannot be read as the schema of " + reader_schema_file_ + ": " + why;
    return;
  }
  avro_schema_t reader = reader_schema_.get();
  try {
    if (auto fields = fields_only_read(w.schema.get(), reader, reader_notes_); !fields.empty()) {
      w.reader = without_fields(reader, fields);
      reader = w.reader.get();
      plan_defaults(fields, w);
    }
  } catch (const std::exception& e) {
    w.error = which + " cannot be read as the schema of " + reader_schema_file_ + ": " + e.what();
    return;
  }
  w.iface.reset(avro_resolved_writer_new(w.schema.get(), reader));
  if (!w.iface) {
    w.error = which + " cannot be read as the schema of " + reader_schema_file_ + ": " + avro_error();
    return;
  }
  w.reader_iface.reset(avro_generic_class_from_schema(reader));
  if (!w.reader_iface) {
    w.error = reader_schema_file_ + ": " + avro_error();
    return;
  }
  w.result = std::make_unique<OwnedValue>(w.reader_iface.get());
  avro_value_t resolved;
  if (avro_resolved_writer_new_value(w.iface.get(), &resolved) != 0) {
    w.error = which + ": " + avro_error();
    return;
  }
  w.read_into = std::make_unique<OwnedValue>(resolved);
  avro_resolved_writer_set_dest(&w.read_into->get(), &w.result->get());
}

// For each reader record with fields the writer lacks: its full field list, where each
// comes from in the struct read without them, and the defaults (a timestamp's as the
// decoder reads that logical type).
void AvroDecode::plan_defaults(const std::set<std::pair<std::string, std::string>>& fields, Writer& w) const {
  const std::map<std::string, avro_schema_t> records = records_of(reader_schema_.get());
  for (const auto& [record, unused] : fields) {
    if (w.filled.count(record)) continue;
    avro_schema_t r = records.at(record);
    Writer::Filled f;
    std::vector<std::string> names;
    int read = 0;
    for (std::size_t i = 0; i < avro_schema_record_size(r); ++i) {
      const std::pair<std::string, std::string> key(record, avro_schema_record_field_name(r, static_cast<int>(i)));
      names.push_back(key.second);
      if (!fields.count(key)) {
        f.from.push_back(read++);
        f.defaults.emplace_back();
        continue;
      }
      Value d = reader_notes_.defaults.at(key);
      if (const auto* n = d.as<std::int64_t>()) {
        if (reader_notes_.millis_fields.count(key)) d = Timestamp{*n * 1000};
        else if (reader_notes_.micros_fields.count(key)) d = Timestamp{*n};
      }
      f.from.push_back(-1);
      f.defaults.push_back(std::move(d));
    }
    f.read = static_cast<std::size_t>(read);
    f.schema = StructSchema::make(std::move(names), record);
    w.filled.emplace(record, std::move(f));
  }
}

}  // namespace pipehost::avro
