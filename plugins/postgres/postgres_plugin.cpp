// postgres: rows into PostgreSQL (libpqxx), exactly once.
#include <pipehost/sdk.hpp>

#include "postgres_sink.hpp"

namespace {

pipehost::PluginSpec describe() {
  pipehost::PluginSpec p{"postgres", "0.2.0", "PostgreSQL sinks (libpqxx)"};
  p.add_sink<pipehost::postgres::PostgresSink>(
      "postgres",
      "Each record's fields as a row of a table (COPY into a temporary table, then INSERT ... "
      "ON CONFLICT), exactly once: the source positions are stored in the same transaction. "
      "Times (RFC 3339 text, a date alone, or a decoder's timestamp) are read as PostgreSQL "
      "reads the text: a timestamptz column takes the instant, timestamp and date the wall "
      "time and date as written (a decoder's timestamp, which has no offset: in UTC)",
      "[pipelines.trades.sink]\nplugin = \"postgres\"\ntable = \"trades\"\n"
      "columns = { book = \"book_id\" }")
      .stores_positions = true;
  return p;
}

}  // namespace

PIPEHOST_PLUGIN(describe)
