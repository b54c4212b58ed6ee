// json: JSON payloads to the neutral value and back.
#include <pipehost/sdk.hpp>

#include "json_decode.hpp"
#include "json_encode.hpp"

namespace {

pipehost::PluginSpec describe() {
  pipehost::PluginSpec p{"json", "0.2.0", "JSON payloads (simdjson On-Demand)"};
  p.add_transform<pipehost::json::JsonDecode>(
      "json_decode",
      "Decodes each record's payload, a JSON object, into its value (a struct); rejects what is "
      "not JSON, not an object, too deep or too large, with the reason",
      "[[pipelines.trades.transforms]]\nplugin = \"json_decode\"");
  p.add_transform<pipehost::json::JsonEncode>(
      "json_encode", "Writes each record's value as JSON into its payload",
      "[[pipelines.trades.transforms]]\nplugin = \"json_encode\"");
  return p;
}

}  // namespace

PIPEHOST_PLUGIN(describe)
