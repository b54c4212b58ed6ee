// file: writes records to a file, one line each.
#include <pipehost/sdk.hpp>

#include "file_sink.hpp"

namespace {

pipehost::PluginSpec describe() {
  pipehost::PluginSpec p{"file", "0.2.0", "Writes records to a file, one line each"};
  p.add_sink<pipehost::file::FileSink>(
      "file", "Appends one line per record: the decoded value as JSON, or the raw payload",
      "[pipelines.tap.sink]\nplugin = \"file\"\npath = \"out.jsonl\"");
  return p;
}

}  // namespace

PIPEHOST_PLUGIN(describe)
