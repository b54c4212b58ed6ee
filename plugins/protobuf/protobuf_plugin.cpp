// protobuf: protobuf_encode and protobuf_decode, Confluent's Schema Registry wire format.
#include "protobuf_plugin.hpp"

#include "protobuf_decode.hpp"
#include "protobuf_encode.hpp"

namespace pipehost::protobuf {

PluginSpec plugin_spec() {
  PluginSpec p{"protobuf", "0.2.0",
               "Protobuf values in the Confluent Schema Registry wire format (magic byte, schema "
               "id, message-index path, message)"};
  p.add_transform<ProtobufEncode>(
      "protobuf_encode",
      "Encodes each record's value (a struct) as a protobuf message into its payload, framed for "
      "the Schema Registry; registers the message's .proto file at start",
      "[[pipelines.transactions.transforms]]\nplugin = \"protobuf_encode\"\n"
      "message = \"Transaction\"\ntopic = \"jagoTransactions\"");
  p.add_transform<ProtobufDecode>(
      "protobuf_decode",
      "Decodes each record's payload into its value (a struct), with the writer's schema fetched "
      "from the Schema Registry by the id in the framing",
      "[[pipelines.totals.transforms]]\nplugin = \"protobuf_decode\"\n"
      "fields = [\"account_number\", \"amount\"]");
  return p;
}

}  // namespace pipehost::protobuf

PIPEHOST_PLUGIN(pipehost::protobuf::plugin_spec)
