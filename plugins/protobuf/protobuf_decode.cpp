#include "protobuf_decode.hpp"

namespace pipehost::protobuf {

void ProtobufDecodeConfig::declare(OptionList<ProtobufDecodeConfig>& o) {
  o.add("fields", &ProtobufDecodeConfig::fields,
        "top-level fields to decode, the others are skipped (empty: all)");
  o.add("descriptor_set", &ProtobufDecodeConfig::descriptor_set,
        "descriptor set for imports other than google/protobuf/*.proto; default: the data "
        "directory's proto/pipehost.desc when present");
  o.add("max_record_bytes", &ProtobufDecodeConfig::max_record_bytes,
        "a larger message is rejected (dead letter) instead of decoded")
      .at_least(1);
  o.add("max_elements", &ProtobufDecodeConfig::max_elements,
        "a message with more list elements plus nested messages' fields is rejected: bounds the time "
        "and memory one hostile record can take")
      .at_least(1);
}

void ProtobufDecodeConfig::check(Checker& c) const {
  (void)c.context().schema_registry();  // this stage uses it: validate --connect asks it
  if (!descriptor_set) return;
  try {
    SchemaFiles::from_descriptor_set(*descriptor_set);
  } catch (const std::exception& e) {
    c.problem("descriptor_set", e.what());
  }
}

}  // namespace pipehost::protobuf
