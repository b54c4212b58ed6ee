// The sqlite sink's options, checked against the database file (or its template) read only.
#include "sqlite_sink.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>

namespace pipehost::sqlite {

void SqliteConfig::declare(OptionList<SqliteConfig>& o) {
  o.required("database", &SqliteConfig::database, "the SQLite database file").connection("sqlite");
  o.add("template", &SqliteConfig::template_file,
        "a database file copied to `database` when that does not exist yet");
  o.required("table", &SqliteConfig::table, "the table rows go to; it must exist, with a primary key");
  o.add("columns", &SqliteConfig::columns,
        "field = column, for fields stored under another name; every other column takes the "
        "field of its own name. A column the record has no field for is left out of its row: a "
        "new row takes the column's DEFAULT (or null), a row already there keeps its value");
  o.add("add", &SqliteConfig::add,
        "columns summed on conflict (count = count + excluded.count); the others are replaced. A "
        "record without a number for each, or without its primary key, is rejected");
  o.add("positions_table", &SqliteConfig::positions_table,
        "table of the source positions (pipeline, destination table, topic, partition, "
        "next_offset), in the same file, created when missing");
  o.add("busy_timeout_ms", &SqliteConfig::busy_timeout_ms,
        "how long a write waits for another writer before trying again")
      .range(0, 600000);
  o.add("foreign_keys", &SqliteConfig::foreign_keys,
        "enforce the table's foreign keys (PRAGMA foreign_keys, off by SQLite's default): a "
        "row that breaks one is rejected like any refused row, deferred ones too");
}

namespace {
std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}
}  // namespace

void read_table(Database& db, const SqliteConfig& config, std::vector<std::string>& names,
                std::vector<std::string>& keys, const std::function<void(const char*, const std::string&)>& problem,
                bool* rowid_key) {
  Statement info = db.prepare("PRAGMA table_info(" + identifier(config.table) + ")");
  std::string key_type;
  while (sqlite3_step(info.get()) == SQLITE_ROW) {
    names.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(info.get(), 1)));
    if (sqlite3_column_int(info.get(), 5) > 0) {
      keys.push_back(names.back());
      const auto* type = sqlite3_column_text(info.get(), 2);
      key_type = type ? reinterpret_cast<const char*>(type) : "";
    }
  }
  // INTEGER PRIMARY KEY is the rowid: a NULL there makes SQLite choose the next one.
  for (auto& c : key_type) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (rowid_key) *rowid_key = keys.size() == 1 && key_type == "INTEGER";
  if (names.empty()) return problem("table", "table " + config.table + " does not exist in " + db.path());
  if (keys.empty()) problem("table", "table " + config.table + " has no primary key to upsert on");
  for (const auto& [field, column] : config.columns)
    if (std::find(names.begin(), names.end(), column) == names.end())
      problem("columns", "option columns maps field '" + field + "' to column '" + column + "', which table " +
                             config.table + " does not have; its columns: " + join(names, ", "));
  for (const auto& a : config.add)
    if (std::find(names.begin(), names.end(), a) == names.end())
      problem("add", "option add names column '" + a + "', which table " + config.table +
                         " does not have; its columns: " + join(names, ", "));
}

void SqliteConfig::check(Checker& c) const {
  std::error_code ec;
  const bool exists = std::filesystem::exists(database, ec);
  if (!exists && !(template_file && std::filesystem::exists(*template_file, ec)))
    return c.problem(template_file ? "template" : "database",
                     (template_file ? "neither " + database + " nor " + *template_file + " exists"
                                    : database + " does not exist") +
                         ": point database at the file, or template at a file to copy it from");
  // The table as the file (or the template it would be copied from) has it, read only.
  std::optional<Database> db;
  try {
    db.emplace(exists ? database : *template_file, std::nullopt, busy_timeout_ms, true);
    std::vector<std::string> names, keys;
    read_table(*db, *this, names, keys, [&](const char* option, const std::string& message) {
      c.problem(option, message);
    });
  } catch (const BusyError&) {
    // Another process holding the file past busy_timeout_ms is not the config's fault:
    // the sink waits for it at start (and retries), as it does mid-run.
    return;
  } catch (const std::exception& e) {
    const int code = db ? sqlite3_errcode(db->handle()) & 0xff : 0;
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED) return;
    c.problem(exists ? "database" : "template", e.what());
  }
}

}  // namespace pipehost::sqlite
