#include "sqlite_query.hpp"

#include <algorithm>
#include <filesystem>

#include <pipehost/json.hpp>

namespace pipehost::sqlite {

void SqliteQueryConfig::declare(OptionList<SqliteQueryConfig>& o) {
  o.required("database", &SqliteQueryConfig::database, "the SQLite database file").connection("sqlite");
  o.add("template", &SqliteQueryConfig::template_file,
        "a database file copied to `database` when that does not exist yet");
  o.required("query", &SqliteQueryConfig::query,
             "the SQL query whose rows are the answer; it must only read (SELECT ...)");
  o.add("sort_keys", &SqliteQueryConfig::sort_keys,
        "each row's keys in alphabetical order (as Flask's jsonify); false: column order");
  o.add("busy_timeout_ms", &SqliteQueryConfig::busy_timeout_ms, "how long a query waits for a lock")
      .range(0, 600000);
}

void SqliteQueryConfig::check(Checker& c) const {
  std::error_code ec;
  if (!std::filesystem::exists(database, ec) && !(template_file && std::filesystem::exists(*template_file, ec)))
    c.problem(template_file ? "template" : "database",
              "neither " + database + (template_file ? " nor " + *template_file : std::string()) + " exists");
}

SqliteQuery::SqliteQuery(const Config& config, Context& context)
    : config_(config), served_(context.counter("requests")) {}

void SqliteQuery::start() {
  db_ = std::make_unique<Database>(config_.database, config_.template_file, config_.busy_timeout_ms, false);
  statement_ = db_->prepare(config_.query);
  if (!sqlite3_stmt_readonly(statement_.get()))
    throw FatalError("sqlite_query: the query writes to the database; a route may only read: " + config_.query);
}

HttpResponse SqliteQuery::handle(const HttpRequest&) {
  std::lock_guard lock(mutex_);
  sqlite3_stmt* s = statement_.get();
  sqlite3_reset(s);
  const int columns = sqlite3_column_count(s);
  std::vector<int> order(static_cast<std::size_t>(columns));
  for (int c = 0; c < columns; ++c) order[static_cast<std::size_t>(c)] = c;
  if (config_.sort_keys)
    std::sort(order.begin(), order.end(), [&](int a, int b) {
      return std::string_view(sqlite3_column_name(s, a)) < std::string_view(sqlite3_column_name(s, b));
    });
  HttpResponse response;
  std::string& out = response.body;
  out = "[";
  int rc;
  bool first = true;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    out += first ? "{" : ",{";
    first = false;
    for (std::size_t k = 0; k < order.size(); ++k) {
      const int c = order[k];
      if (k) out += ',';
      json::append_string(sqlite3_column_name(s, c), out);
      out += ':';
      switch (sqlite3_column_type(s, c)) {
        case SQLITE_INTEGER: out += std::to_string(sqlite3_column_int64(s, c)); break;
        case SQLITE_FLOAT: json::append(Value(sqlite3_column_double(s, c)), out); break;
        case SQLITE_NULL: out += "null"; break;
        case SQLITE_BLOB:
          json::append_base64({static_cast<const char*>(sqlite3_column_blob(s, c)),
                               static_cast<std::size_t>(sqlite3_column_bytes(s, c))},
                              out);
          break;
        default:
          json::append_string({reinterpret_cast<const char*>(sqlite3_column_text(s, c)),
                               static_cast<std::size_t>(sqlite3_column_bytes(s, c))},
                              out);
      }
    }
    out += '}';
  }
  if (rc != SQLITE_DONE) {
    const bool busy = rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
    std::string why = db_->error("running the query");
    sqlite3_reset(s);
    if (busy) throw RetriableError(why);
    throw FatalError(why);
  }
  out += ']';
  sqlite3_reset(s);  // ends the read transaction: writers are never held back by a reader
  served_.add();
  return response;
}

}  // namespace pipehost::sqlite
