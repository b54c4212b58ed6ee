// sqlite: rows into a SQLite file exactly once, and an HTTP route reading them.
#include <pipehost/sdk.hpp>

#include "sqlite_query.hpp"
#include "sqlite_sink.hpp"

namespace {

pipehost::PluginSpec describe() {
  pipehost::PluginSpec p{"sqlite", "0.2.0", "SQLite (libsqlite3): an exactly-once sink and a query route"};
  p.add_sink<pipehost::sqlite::SqliteSink>(
      "sqlite",
      "Upserts each record into a table of an existing database file (summing the `add` "
      "columns on conflict), with the source positions in the same transaction: exactly once",
      "[pipelines.food.sink]\nplugin = \"sqlite\"\ndatabase = \"food.sqlite\"\ntable = \"aggregated\"\n"
      "add = [\"count\"]")
      .stores_positions = true;
  p.add_route<pipehost::sqlite::SqliteQuery>(
      "sqlite_query", "Answers with the rows of a fixed query as a JSON array of objects",
      "[[http.routes]]\npath = \"/aggregated\"\nplugin = \"sqlite_query\"\ndatabase = \"food.sqlite\"\n"
      "query = \"SELECT * FROM aggregated ORDER BY food\"");
  return p;
}

}  // namespace

PIPEHOST_PLUGIN(describe)
