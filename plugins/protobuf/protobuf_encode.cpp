#include "protobuf_encode.hpp"

namespace pipehost::protobuf {

void ProtobufEncodeConfig::declare(OptionList<ProtobufEncodeConfig>& o) {
  o.required("message", &ProtobufEncodeConfig::message,
             "message to write, by full name (\"pkg.Transaction\") or unique simple name");
  o.add("topic", &ProtobufEncodeConfig::topic,
        "topic the records go to: the subject is \"<topic>-value\" (TopicNameStrategy); a "
        "record with a destination topic uses that topic's subject");
  o.add("subject", &ProtobufEncodeConfig::subject,
        "subject to register under, overriding topic and destination topics (a record's "
        "pipehost.subject header, set by the router, takes precedence)");
  o.add("descriptor_set", &ProtobufEncodeConfig::descriptor_set,
        "compiled descriptor set (protoc --include_imports) holding the message; default: the "
        "data directory's proto/pipehost.desc, compiled from proto/*.proto");
}

void ProtobufEncodeConfig::check(Checker& c) const {
  (void)c.context().schema_registry();  // this stage uses it: validate --connect asks it
  std::unique_ptr<SchemaFiles> files;
  try {
    files = SchemaFiles::from_descriptor_set(descriptor_set_or(c.context().data_dir()));
  } catch (const std::exception& e) {
    return c.problem("descriptor_set", e.what());
  }
  try {
    files->find_message(message);
  } catch (const std::exception& e) {
    c.problem("message", e.what());
  }
}

}  // namespace pipehost::protobuf
