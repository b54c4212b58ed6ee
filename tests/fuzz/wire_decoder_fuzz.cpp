// decode_message over arbitrary bytes, for every message of the protobuf plugin's test
// schemas (everything.proto, legacy.proto) and of proto/*.proto. The first input byte
// picks the message (low 6 bits), a projection of every other field (bit 6) and a tight
// element budget (bit 7); the rest is the message. Malformed input must be rejected with
// pipehost::InvalidRecord; accepted input must decode the same into a Value that held a
// record before as into a fresh one (the decode transform reuses one Value per record).
#include <google/protobuf/descriptor.pb.h>

#include <bit>
#include <cstdint>
#include <fstream>
#include <memory>
#include <pipehost/status.hpp>
#include <pipehost/value.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "schema_loader.hpp"
#include "wire_decoder.hpp"

namespace {

namespace gp = google::protobuf;
using namespace pipehost;
using namespace pipehost::protobuf;

struct Target {
  const DecodePlan* full = nullptr;
  const DecodePlan* projected = nullptr;
};

std::vector<std::unique_ptr<SchemaFiles>> g_files;
DecodePlans g_plans;
std::vector<std::unique_ptr<DecodePlans>> g_projections;  // one per message
std::vector<Target> g_targets;

void collect(const gp::Descriptor& message, std::vector<const gp::Descriptor*>& out) {
  out.push_back(&message);
  for (int i = 0; i < message.nested_type_count(); ++i) collect(*message.nested_type(i), out);
}

// Every message of the set's own files (not the well-known types it includes).
void load(const char* path) {
  const SchemaFiles& files = *g_files.emplace_back(SchemaFiles::from_descriptor_set(path));
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  gp::FileDescriptorSet set;
  FUZZ_CHECK(set.ParseFromString(bytes.str()));
  std::vector<const gp::Descriptor*> messages;
  for (const auto& proto : set.file()) {
    if (is_well_known_file(proto.name())) continue;
    const gp::FileDescriptor* file = files.pool().FindFileByName(proto.name());
    for (int i = 0; file && i < file->message_type_count(); ++i) collect(*file->message_type(i), messages);
  }
  for (const gp::Descriptor* message : messages) {
    std::vector<std::string> every_other;
    for (int i = 0; i < message->field_count(); i += 2) every_other.push_back(message->field(i)->name());
    try {
      Target t{&g_plans.plan(*message), nullptr};
      if (!every_other.empty()) {
        auto& projection = g_projections.emplace_back(std::make_unique<DecodePlans>(every_other));
        t.projected = &projection->plan(*message);
      }
      g_targets.push_back(t);
    } catch (const std::runtime_error&) {  // a message the decoder does not support
    }
  }
}

// Deep equality that tells every double apart by its bits (NaN included).
bool same(const Value& a, const Value& b) {
  if (a.variant().index() != b.variant().index()) return false;
  if (const auto* l = a.as<List>()) {
    const List& r = *b.as<List>();
    if (l->size() != r.size()) return false;
    for (std::size_t i = 0; i < l->size(); ++i)
      if (!same((*l)[i], r[i])) return false;
    return true;
  }
  if (const auto* s = a.as<Struct>()) {
    const Struct& r = *b.as<Struct>();
    if (s->schema != r.schema || s->fields.size() != r.fields.size()) return false;
    for (std::size_t i = 0; i < s->fields.size(); ++i)
      if (!same(s->fields[i], r.fields[i])) return false;
    return true;
  }
  if (const auto* d = a.as<double>())
    return std::bit_cast<std::uint64_t>(*d) == std::bit_cast<std::uint64_t>(*b.as<double>());
  if (const auto* t = a.as<Timestamp>()) return *t == *b.as<Timestamp>();
  if (const auto* x = a.as<Bytes>()) return *x == *b.as<Bytes>();
  return a.to_text() == b.to_text();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  load(FUZZ_TEST_DESCRIPTOR_SET);
  load(FUZZ_PROJECT_DESCRIPTOR_SET);
  FUZZ_CHECK(!g_targets.empty() && g_targets.size() <= 64);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const Target& target = g_targets[(data[0] & 0x3f) % g_targets.size()];
  const DecodePlan* plan = (data[0] & 0x40) && target.projected ? target.projected : target.full;
  DecodeLimits limits;
  if (data[0] & 0x80) limits.max_elements = 64;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);

  Value fresh;
  try {
    decode_message(*plan, bytes, fresh, limits);
  } catch (const InvalidRecord&) {
    return 0;
  } catch (...) {
    pipehost::fuzz::undocumented_exception("decode_message");
  }
  Value reused = fresh;  // as the transform's Value after the previous record
  try {
    decode_message(*plan, bytes, reused, limits);
  } catch (...) {
    pipehost::fuzz::undocumented_exception("decode_message into a reused Value");
  }
  FUZZ_CHECK(same(fresh, reused));
  return 0;
}
