#include "sqlite_query.hpp"

#include <algorithm>
#include <filesystem>
#include <optional>

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
  o.add("max_response_mb", &SqliteQueryConfig::max_response_mb,
        "the largest answer, in MiB: a query whose rows pass it answers 500 naming this option "
        "(the answer is built whole in memory, one request at a time per route)")
      .range(1, 4096);
}

namespace {
// Why `query` cannot answer a route ("" when it can): it must be one statement (SQLite
// would run only the first of several) that only reads.
std::string query_problem(sqlite3* db, const std::string& query) {
  sqlite3_stmt* s = nullptr;
  const char* rest = nullptr;
  if (sqlite3_prepare_v2(db, query.c_str(), static_cast<int>(query.size()), &s, &rest) != SQLITE_OK)
    return std::string("the query does not run: ") + sqlite3_errmsg(db);
  const bool reads = s == nullptr || sqlite3_stmt_readonly(s);
  sqlite3_finalize(s);
  if (!s) return "the query is empty";
  if (!reads) return "the query writes to the database; a route may only read (SELECT ...)";
  // What follows the first statement: only white space, comments and semicolons.
  sqlite3_stmt* next = nullptr;
  std::string tail(rest ? rest : "");
  while (!tail.empty()) {
    const char* after = nullptr;
    if (sqlite3_prepare_v2(db, tail.c_str(), static_cast<int>(tail.size()), &next, &after) != SQLITE_OK || next) {
      sqlite3_finalize(next);
      return "the query holds more than one statement; SQLite runs only the first: give one";
    }
    if (!after || after == tail.c_str()) break;
    tail = after;
  }
  return "";
}
}  // namespace

void SqliteQueryConfig::check(Checker& c) const {
  std::error_code ec;
  const bool exists = std::filesystem::exists(database, ec);
  if (!exists && !(template_file && std::filesystem::exists(*template_file, ec)))
    return c.problem(template_file ? "template" : "database",
                     "neither " + database + (template_file ? " nor " + *template_file : std::string()) + " exists");
  // Another process holding the file past busy_timeout_ms is not the config's fault (the
  // sink of the same file waits for it at start, as here the route's start does).
  auto busy = [](sqlite3* db) {
    const int code = db ? sqlite3_errcode(db) & 0xff : 0;
    return code == SQLITE_BUSY || code == SQLITE_LOCKED;
  };
  std::optional<Database> db;
  try {
    db.emplace(exists ? database : *template_file, std::nullopt, busy_timeout_ms, true);
    if (std::string why = query_problem(db->handle(), query); !why.empty() && !busy(db->handle()))
      c.problem("query", why);
  } catch (const BusyError&) {
    return;
  } catch (const std::exception& e) {
    if (!busy(db ? db->handle() : nullptr)) c.problem(exists ? "database" : "template", e.what());
  }
}

SqliteQuery::SqliteQuery(const Config& config, Context& context)
    : config_(config), served_(context.counter("requests")) {}

void SqliteQuery::start() {
  db_ = std::make_unique<Database>(config_.database, config_.template_file, config_.busy_timeout_ms, false);
  if (std::string why = query_problem(db_->handle(), config_.query); !why.empty())
    throw FatalError("sqlite_query: " + why + ": " + config_.query);
  statement_ = db_->prepare(config_.query);
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
  const std::size_t most_bytes = static_cast<std::size_t>(config_.max_response_mb) << 20;
  std::uint64_t row = 1;  // the row being written, counted from 1
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
    if (out.size() > most_bytes) {
      sqlite3_reset(s);  // ends the read transaction (the answer built so far goes with the throw)
      throw FatalError("sqlite_query: the answer passed max_response_mb = " + std::to_string(config_.max_response_mb) +
                       " at row " + std::to_string(row) + "; narrow the query (WHERE, LIMIT) or raise max_response_mb");
    }
    ++row;
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
