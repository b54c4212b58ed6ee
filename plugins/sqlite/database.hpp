// A SQLite database file opened the way both sqlite components need it: created from a
// template file when it does not exist yet (e.g. the seed's own db.sqlite), in WAL mode
// so a reader in another process never waits for a writer, with a busy timeout so two
// writers take turns instead of failing. RAII over sqlite3* and sqlite3_stmt*.
#pragma once
#include <sqlite3.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace pipehost::sqlite {

struct StatementDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementDeleter>;

// Another connection held the file past the busy timeout: not the config's fault, and a
// later try may succeed (a sink retries).
struct BusyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Database {
 public:
  // Throws std::runtime_error naming the file when it cannot be opened (or copied).
  Database(const std::string& path, const std::optional<std::string>& template_file,
           int busy_timeout_ms, bool read_only);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  sqlite3* handle() { return db_; }
  const std::string& path() const { return path_; }
  // Runs SQL without results; throws with the statement and SQLite's message (BusyError
  // when another connection held the file past the busy timeout).
  void exec(const std::string& sql);
  Statement prepare(const std::string& sql);
  // The SQLite error of the last call, with the file named.
  std::string error(std::string_view doing) const;

 private:
  // sqlite3_exec's result code; `why` gets its message when it is not SQLITE_OK.
  int run(const std::string& sql, std::string& why);
  void use_wal(int busy_timeout_ms);

  std::string path_;
  sqlite3* db_ = nullptr;
};

// Creates `path` from `template_file` when `path` does not exist: a copy to a temporary
// name, then a rename, so two processes starting together never see half a file.
void copy_if_missing(const std::string& path, const std::string& template_file);

// A name as an SQL identifier: in double quotes, a quote inside doubled.
std::string identifier(const std::string& name);

}  // namespace pipehost::sqlite
