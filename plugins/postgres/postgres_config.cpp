// The postgres sink's options, checked against the database when it can be reached, and
// what it reads of the table.
#include "postgres_shared.hpp"

#include <algorithm>
#include <fstream>
#include <set>

#include <pipehost/redact.hpp>
#include <pipehost/utf8.hpp>

namespace pipehost::postgres {

std::string with_timeout(const std::string& url, int timeout_ms) {
  std::vector<std::string> settings = {"connect_timeout=" + std::to_string(std::max(1, timeout_ms / 1000))};
  if (url.find("keepalives") == std::string::npos)
    settings.insert(settings.end(), {"keepalives_idle=15", "keepalives_interval=5", "keepalives_count=3"});
  const bool uri = url.find("://") != std::string::npos;
  std::string out = url;
  for (const auto& s : settings)
    out += (uri ? (out.find('?') == std::string::npos ? "?" : "&") : " ") + s;
  return out;
}

std::string server_message(std::string text) {
  if (text.rfind("ERROR:", 0) == 0) text.erase(0, text.find_first_not_of(' ', 6));
  std::string out = text.substr(0, text.find('\n'));
  const std::size_t detail = text.find("\nDETAIL:");
  const std::size_t from = detail == std::string::npos ? detail : text.find_first_not_of(' ', detail + 8);
  if (from != std::string::npos) out += " (" + text.substr(from, text.find('\n', from) - from) + ")";
  return utf8::abbreviated(out, 300);
}

std::vector<std::string> placeholders(const std::string& text) {
  std::vector<std::string> out;
  for (std::size_t at = text.find('{'); at != std::string::npos; at = text.find('{', at + 1)) {
    std::size_t end = text.find('}', at);
    if (end == std::string::npos) break;
    out.push_back(text.substr(at + 1, end - at - 1));
  }
  return out;
}

void PostgresConfig::declare(OptionList<PostgresConfig>& o) {
  o.add("url", &PostgresConfig::url,
        "PostgreSQL connection: postgresql://[user[:password]@]host[:port]/database or a "
        "libpq key=value string")
      .connection("postgres");
  o.required("table", &PostgresConfig::table, "the table rows go to, named as in SQL (schema.table; double quotes keep upper case); its "
             "columns and primary key are read at start");
  o.add("columns", &PostgresConfig::columns,
        "field = column, for fields stored under another name (e.g. { book = \"book_id\" }); "
        "every other column takes the field of its own name. A column the record has no field "
        "for is left out of its row: a new row takes the column's DEFAULT (serial, now()) or "
        "null, an update keeps what the row held (one statement per set of fields, so serial "
        "ids follow record order only among records with the same fields)");
  o.add("on_conflict", &PostgresConfig::on_conflict,
        "a row whose primary key is already there: ignore keeps the first write (seed 002), "
        "update replaces the columns the record has fields for and keeps the others (as the "
        "records of a key applied one after the other would leave the row, within a batch too; "
        "a record without a NOT NULL column's field updates a row already there and is refused "
        "as a new one). "
        "A table without a primary key takes every "
        "record as a new row (update refuses to start)")
      .one_of({"ignore", "update"});
  o.add("positions_table", &PostgresConfig::positions_table,
        "table of the source positions stored with the rows (pipeline, destination table, "
        "topic, partition, next_offset), created when missing; one name, in the connection's "
        "search_path (a dot is part of the name)");
  o.add("schema_file", &PostgresConfig::schema_file,
        "SQL run at start when the table does not exist yet (its CREATE TABLE)");
  o.add("log_each", &PostgresConfig::log_each,
        "a line logged per row stored, {column} replaced by its value, e.g. \"Stored trade "
        "with ID {id} and version {version}\" (empty: only a summary every 10 s)");
  o.add("connect_timeout_ms", &PostgresConfig::connect_timeout_ms, "how long to wait for a connection")
      .range(1000, 600000);
  o.add("lock_timeout_ms", &PostgresConfig::lock_timeout_ms,
        "how long a write waits for a row or table lock another session holds (a psql left in "
        "an open transaction) before the batch is tried again, saying so; 0 waits for ever")
      .range(0, 3600000);
}

void PostgresConfig::check(Checker& c) const {
  if (!schema_file.empty() && !std::ifstream(schema_file)) c.problem("schema_file", "cannot read " + schema_file);
  if (!c.connect()) return;
  try {
    pqxx::connection connection(with_timeout(url, connect_timeout_ms));
    pqxx::work tx(connection);
    auto r = tx.exec("SELECT to_regclass(" + tx.quote(table) + ") IS NOT NULL");
    if (!r[0][0].as<bool>() && schema_file.empty())
      c.problem("table", "table " + table + " does not exist in " + redact::url(url) +
                             " (create it, or set schema_file to its CREATE TABLE)");
    else if (r[0][0].as<bool>())
      read_layout(tx, *this, [&](const char* option, const std::string& message) { c.problem(option, message); });
  } catch (const std::exception& e) {
    // libpq's text: "connection to server at ... failed: FATAL:  role \"x\" does not exist\n".
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    std::replace(what.begin(), what.end(), '\t', ' ');
    while (!what.empty() && what.back() == ' ') what.pop_back();
    const bool refused_login = what.find("does not exist") != std::string::npos ||
                               what.find("authentication failed") != std::string::npos ||
                               what.find("no password supplied") != std::string::npos ||
                               what.find("no pg_hba.conf entry") != std::string::npos;
    c.unreachable("PostgreSQL at " + redact::url(url) + ": " + what +
                  (refused_login ? " (the server answered: check the user, password and database in the url, "
                                   "postgresql://user:password@host:port/database)"
                                 : " (is it running? set DATABASE_URL, or [connections] postgres; "
                                   "scripts/services start starts one)"));
  }
}

TableLayout read_layout(pqxx::transaction_base& tx, const PostgresConfig& config,
                        const std::function<void(const char*, const std::string&)>& problem) {
  const std::string regclass = "to_regclass(" + tx.quote(config.table) + ")";
  auto columns = tx.exec(
      "SELECT a.attname, t.typname, a.attnotnull, a.atthasdef OR a.attidentity = 'd' "
      "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
      "WHERE a.attrelid = " + regclass + " AND a.attnum > 0 AND NOT a.attisdropped "
      // The table computes these itself and refuses a value for them.
      "AND a.attgenerated = '' AND a.attidentity <> 'a' ORDER BY a.attnum");
  auto key = tx.exec(
      "SELECT a.attname, a.attgenerated <> '' OR a.attidentity = 'a' FROM pg_index i JOIN pg_attribute a "
      "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = " + regclass +
      " AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)");
  TableLayout layout;
  layout.table = config.table;
  std::map<std::string, std::string> field_of_column;
  for (const auto& [field, column] : config.columns) field_of_column[column] = field;
  std::vector<std::string> names;
  for (const auto& row : columns) {
    Column col;
    col.name = row[0].as<std::string>();
    col.type_name = row[1].as<std::string>();
    auto type = column_type(col.type_name);
    if (!type)
      problem("table", "column " + col.name + " of " + config.table + " has type " + col.type_name +
                           ", which the sink cannot write (text, integers, floats, numeric, boolean, "
                           "timestamps, date, json, bytea, uuid)");
    col.type = type.value_or(ColumnType{});
    col.not_null = row[2].as<bool>();
    col.has_default = row[3].as<bool>();
    auto mapped = field_of_column.find(col.name);
    col.field = mapped == field_of_column.end() ? col.name : mapped->second;
    col.reader = FieldReader(col.field);
    names.push_back(col.name);
    layout.columns.push_back(std::move(col));
  }
  for (const auto& [field, column] : config.columns)
    if (std::find(names.begin(), names.end(), column) == names.end())
      problem("columns", "option columns maps field '" + field + "' to column '" + column + "', which table " +
                             config.table + " does not have; its columns: " + join(names, ", "));
  // A key the table computes (GENERATED ALWAYS AS IDENTITY, a generated column) is no key
  // records can name: each record is a new row.
  bool computed_key = false;
  for (const auto& row : key) {
    layout.primary_key.push_back(row[0].as<std::string>());
    computed_key = computed_key || row[1].as<bool>();
  }
  if (computed_key) layout.primary_key.clear();
  if (config.on_conflict == "update" && layout.primary_key.empty())
    problem("on_conflict", "on_conflict = \"update\" needs a primary key records give, and " + config.table +
                               (computed_key ? "'s is computed by the table (GENERATED ... AS IDENTITY)" : " has none"));
  for (const auto& name : placeholders(config.log_each))
    if (std::find(names.begin(), names.end(), name) == names.end())
      problem("log_each", "log_each names {" + name + "}, which is not a column of " + config.table);
  return layout;
}

}  // namespace pipehost::postgres
