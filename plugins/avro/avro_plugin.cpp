// avro: Avro values in the Confluent Schema Registry wire format; schemas parsed by Avro C.
#include <pipehost/sdk.hpp>

#include "avro_decode.hpp"
#include "avro_encode.hpp"

namespace {

pipehost::PluginSpec describe() {
  pipehost::PluginSpec p{"avro", "0.3.0",
                         "Avro values in the Confluent Schema Registry wire format (magic byte, "
                         "schema id, Avro binary); schemas parsed by Avro C"};
  p.add_transform<pipehost::avro::AvroDecode>(
      "avro_decode",
      "Decodes each record's payload into its value, with the writer's schema fetched from the "
      "Schema Registry by the id in the framing (optionally resolved to a reader schema); "
      "rejects malformed values with the reason",
      "[[pipelines.router.transforms]]\nplugin = \"avro_decode\"");
  p.add_transform<pipehost::avro::AvroEncode>(
      "avro_encode",
      "Encodes each record's value as Avro into its payload, framed for the Schema Registry, "
      "with the latest schema of its subject or a schema file registered under it",
      "[[pipelines.router.transforms]]\nplugin = \"avro_encode\"\n"
      "schema_file = \"schemas/processor-to-consumer.avsc\"");
  return p;
}

}  // namespace

PIPEHOST_PLUGIN(describe)
