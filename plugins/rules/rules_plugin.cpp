// rules: record checks declared in the config.
#include <pipehost/sdk.hpp>

#include "field_rules.hpp"

namespace {

pipehost::PluginSpec describe() {
  pipehost::PluginSpec p{"rules", "0.2.0", "Checks records against rules from the config"};
  p.add_transform<pipehost::rules::FieldRules>(
      "field_rules",
      "Rejects (dead letter, with the rule) each record whose decoded value misses a required "
      "field, or has one of the wrong type, pattern, range or value",
      "[[pipelines.trades.transforms]]\nplugin = \"field_rules\"\n"
      "required = [\"id\", \"version\"]\ntypes = { version = \"integer\", matures_at = \"timestamp\" }\n"
      "patterns = { id = \"T[0-9]+\" }\nminimum = { version = \"0\" }");
  return p;
}

}  // namespace

PIPEHOST_PLUGIN(describe)
