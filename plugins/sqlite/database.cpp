#include "database.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <thread>

namespace pipehost::sqlite {

namespace fs = std::filesystem;

namespace {
bool busy(int rc) { return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED; }
}  // namespace

void copy_if_missing(const std::string& path, const std::string& template_file) {
  std::error_code ec;
  if (fs::exists(path, ec)) return;
  if (!fs::exists(template_file, ec))
    throw std::runtime_error("sqlite: neither " + path + " nor its template " + template_file + " exists");
  if (auto dir = fs::path(path).parent_path(); !dir.empty()) fs::create_directories(dir, ec);
  const std::string partial = path + ".copying-" + std::to_string(::getpid());
  fs::copy_file(template_file, partial, fs::copy_options::overwrite_existing, ec);
  if (ec) throw std::runtime_error("sqlite: cannot copy " + template_file + " to " + path + ": " + ec.message());
  // The copy is the one written to, whatever the template's own mode (a read-only seed).
  fs::permissions(partial, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::add, ec);
  // link + remove: fails when another process made the file meanwhile, which is fine.
  if (::link(partial.c_str(), path.c_str()) != 0 && !fs::exists(path))
    throw std::runtime_error("sqlite: cannot create " + path);
  fs::remove(partial, ec);
}

Database::Database(const std::string& path, const std::optional<std::string>& template_file,
                   int busy_timeout_ms, bool read_only)
    : path_(path) {
  if (template_file) copy_if_missing(path, *template_file);
  int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  if (sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
    std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw std::runtime_error("sqlite: cannot open " + path + ": " + why +
                             (read_only ? "" : " (it must exist: set `template` to create it from a copy)"));
  }
  sqlite3_busy_timeout(db_, busy_timeout_ms);
  // WAL: readers (the API, another process) never block the writer nor see half a
  // transaction. The mode is a property of the file, kept once set.
  try {
    if (!read_only) use_wal(busy_timeout_ms);
  } catch (...) {
    sqlite3_close(db_);  // the destructor does not run for a constructor that throws
    db_ = nullptr;
    throw;
  }
}

// Switching a file to WAL needs it alone for a moment. While another connection writes
// in rollback-journal mode (a fresh template copy that another process opened first, or
// is switching too), SQLite answers SQLITE_BUSY at once instead of calling the busy
// handler (a lock upgrade that could deadlock), so the switch is retried here until
// busy_timeout_ms has passed.
void Database::use_wal(int busy_timeout_ms) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(busy_timeout_ms);
  for (auto pause = std::chrono::milliseconds(5);; pause = std::min(pause * 2, std::chrono::milliseconds(100))) {
    std::string why;
    const int rc = run("PRAGMA journal_mode = WAL", why);
    if (rc == SQLITE_OK) return;
    if (!busy(rc))
      throw std::runtime_error("sqlite " + path_ + ": " + why + " (in: PRAGMA journal_mode = WAL)");
    if (std::chrono::steady_clock::now() >= give_up)
      throw BusyError("sqlite " + path_ + ": " + why +
                               " (in: PRAGMA journal_mode = WAL): another connection held it for " +
                               std::to_string(busy_timeout_ms) + " ms; raise busy_timeout_ms");
    std::this_thread::sleep_for(pause);
  }
}

Database::~Database() { sqlite3_close(db_); }

std::string Database::error(std::string_view doing) const {
  return "sqlite " + path_ + ": " + std::string(doing) + ": " + sqlite3_errmsg(db_);
}

int Database::run(const std::string& sql, std::string& why) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message);
  if (rc != SQLITE_OK) why = message ? message : sqlite3_errmsg(db_);
  sqlite3_free(message);
  return rc;
}

void Database::exec(const std::string& sql) {
  std::string why;
  const int rc = run(sql, why);
  if (rc == SQLITE_OK) return;
  const std::string what = "sqlite " + path_ + ": " + why + " (in: " + sql.substr(0, 80) + ")";
  if (busy(rc)) throw BusyError(what + " (another writer holds the file)");
  throw std::runtime_error(what);
}

Statement Database::prepare(const std::string& sql) {
  sqlite3_stmt* s = nullptr;
  const int rc = sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &s, nullptr);
  if (rc == SQLITE_OK) return Statement(s);
  if (busy(rc)) throw BusyError(error("preparing " + sql.substr(0, 80)) + " (another writer holds the file)");
  throw std::runtime_error(error("preparing " + sql.substr(0, 80)));
}

std::string identifier(const std::string& name) {
  std::string out = "\"";
  for (char c : name) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace pipehost::sqlite
