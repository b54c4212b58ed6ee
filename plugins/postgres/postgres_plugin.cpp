// postgres: rows into PostgreSQL (libpqxx), exactly once.
#include <pipehost/sdk.hpp>

#include "postgres_sink.hpp"

namespace {

pipehost::PluginSpec describe() {
  pipehost::PluginSpec p{"postgres", "0.2.0", "PostgreSQL sinks (libpqxx)"};
  p.add_sink<pipehost::postgres::PostgresSink>(
      "postgres",
      "Each record's fields as a row of a table (COPY into a temporary table, then INSERT ... "
      "ON CONFLICT), exactly once: the source positions are stored in the same transaction",
      "[pipelines.trades.sink]\nplugin = \"postgres\"\ntable = \"trades\"\n"
      "columns = { book = \"book_id\" }")
      .stores_positions = true;
  return p;
}

}  // namespace

PIPEHOST_PLUGIN(describe)
