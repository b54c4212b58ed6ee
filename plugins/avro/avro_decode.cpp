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
  Iface iface;           // the writer's generic class, or the resolved writer
  // With a reader schema (else null, and read_binary reads the value):
  Iface reader_iface;    // the reader's generic class
  std::unique_ptr<OwnedValue> result;     // the reader's value
  std::unique_ptr<OwnedValue> read_into;  // what avro_value_read fills (freed first)
  std::string error;
  Clock::time_point retry_after = Clock::time_point::max();
  SchemaNotes notes;  // its logical types (Avro C drops them)
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
        "(fields it lacks dropped, numbers promoted; every field it has must be in the "
        "writer's schema); default: as written");
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
  return Verdict::keep;
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
  w.iface.reset(avro_resolved_writer_new(w.schema.get(), reader_schema_.get()));
  if (!w.iface) {
    w.error = which + " cannot be read as the schema of " + reader_schema_file_ + ": " + avro_error();
    return;
  }
  w.reader_iface.reset(avro_generic_class_from_schema(reader_schema_.get()));
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

}  // namespace pipehost::avro
