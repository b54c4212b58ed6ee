// The sqlite sink at run time: upserts per row, the source positions in the same
// transaction; the rows the table refuses are found in one pass and rejected when the
// batch is read again.
#include "sqlite_sink.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <optional>
#include <filesystem>
#include <functional>

#include <pipehost/json.hpp>
#include <pipehost/stored_positions.hpp>
#include <pipehost/time.hpp>

namespace pipehost::sqlite {
namespace {

std::string key_of(std::string_view topic, std::int32_t partition) {
  return std::string(topic) + ":" + std::to_string(partition);
}

// A row the table refuses for what it holds, where the other rows may be fine.
bool refused_by_table(int extended_code) {
  const int code = extended_code & 0xff;
  return code == SQLITE_CONSTRAINT || code == SQLITE_MISMATCH || code == SQLITE_TOOBIG;
}

}  // namespace

SqliteSink::SqliteSink(const Config& config, Context& context)
    : config_(config), context_(context), rows_out_(context.counter("records_out")),
      batches_already_applied_(context.counter("batches_already_applied")) {}

SqliteSink::~SqliteSink() = default;

[[noreturn]] void SqliteSink::fail(const std::string& doing) {
  const int code = sqlite3_errcode(db_->handle());
  std::string what = db_->error(doing);
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED) throw RetriableError(what + " (another writer holds the file)");
  throw FatalError(what);
}

void SqliteSink::open() {
  db_ = std::make_unique<Database>(config_.database, config_.template_file, config_.busy_timeout_ms, false);
  if (config_.foreign_keys) db_->exec("PRAGMA foreign_keys = ON");
  make_positions_table();
  std::vector<std::string> names, keys;
  read_table(*db_, config_, names, keys, [](const char*, const std::string& message) {
    throw FatalError("sqlite: " + message);
  }, &rowid_key_);
  std::map<std::string, std::string> field_of;
  for (const auto& [field, column] : config_.columns) field_of[column] = field;
  columns_.clear();
  key_columns_.clear();
  add_columns_.clear();
  upserts_.clear();
  for (const auto& name : names) {
    auto f = field_of.find(name);
    if (std::find(keys.begin(), keys.end(), name) != keys.end()) key_columns_.push_back(columns_.size());
    else if (std::find(config_.add.begin(), config_.add.end(), name) != config_.add.end())
      add_columns_.push_back(columns_.size());
    columns_.push_back({name, FieldReader(f == field_of.end() ? name : f->second)});
  }
  read_position_ = db_->prepare("SELECT next_offset FROM " + identifier(config_.positions_table) +
                                " WHERE pipeline = ? AND destination = ? AND topic = ? AND partition = ?");
  store_position_ = db_->prepare("INSERT INTO " + identifier(config_.positions_table) +
                                 " (pipeline, destination, topic, partition, next_offset) VALUES (?, ?, ?, ?, ?) "
                                 "ON CONFLICT (pipeline, destination, topic, partition) DO UPDATE SET "
                                 "next_offset = excluded.next_offset");
}

// For `pipehost positions`: read-only, and nothing created (no file from the template,
// no positions table, no migration). Without a file or a table, no position is stored.
// Whether the positions table exists, and whether it has the destination column (a
// table of the earlier layout does not).
SqliteSink::PositionsLayout SqliteSink::positions_layout() {
  PositionsLayout out;
  Statement info = db_->prepare("PRAGMA table_info(" + identifier(config_.positions_table) + ")");
  while (sqlite3_step(info.get()) == SQLITE_ROW) {
    out.exists = true;
    out.has_destination |=
        std::string_view(reinterpret_cast<const char*>(sqlite3_column_text(info.get(), 1))) == "destination";
  }
  return out;
}

void SqliteSink::open_to_read_positions() {
  std::error_code ec;
  if (!std::filesystem::exists(config_.database, ec)) return;
  db_ = std::make_unique<Database>(config_.database, std::nullopt, config_.busy_timeout_ms, true);
  const PositionsLayout layout = positions_layout();
  if (!layout.exists) return;
  const bool has_destination = layout.has_destination;
  // A table of the earlier layout has no destination: its rows are this pipeline's
  // (claimed for its table at its next start). The destination is bound all the same.
  read_position_ = db_->prepare("SELECT next_offset FROM " + identifier(config_.positions_table) +
                                " WHERE pipeline = ? AND " +
                                (has_destination ? "destination = ?" : "? IS NOT NULL") +
                                " AND topic = ? AND partition = ?");
}

// Positions are kept per (pipeline, destination table, topic, partition), as postgres
// does: a pipeline pointed at another table of the file starts it from the group's
// offsets instead of where it had got in the first. A table of the earlier layout
// (without the destination) is rebuilt with it, its rows claimed by the table each
// pipeline writes when that pipeline starts. One writer at a time (BEGIN IMMEDIATE).
void SqliteSink::make_positions_table() {
  const std::string positions = identifier(config_.positions_table);
  const std::string columns =
      " (pipeline TEXT, destination TEXT NOT NULL DEFAULT '', topic TEXT, partition INTEGER, "
      "next_offset INTEGER NOT NULL, PRIMARY KEY (pipeline, destination, topic, partition))";
  db_->exec("BEGIN IMMEDIATE");
  try {
    db_->exec("CREATE TABLE IF NOT EXISTS " + positions + columns);
    if (!positions_layout().has_destination) {
      const std::string old = identifier(config_.positions_table + "_before_destination");
      db_->exec("ALTER TABLE " + positions + " RENAME TO " + old);
      db_->exec("CREATE TABLE " + positions + columns);
      db_->exec("INSERT INTO " + positions + " (pipeline, topic, partition, next_offset) "
                "SELECT pipeline, topic, partition, next_offset FROM " + old);
      db_->exec("DROP TABLE " + old);
      context_.info("sqlite: " + config_.positions_table + " now keeps positions per destination table too");
    }
    Statement claim = db_->prepare("UPDATE " + positions +
                                   " SET destination = ? WHERE pipeline = ? AND destination = ''");
    const std::string pipeline(context_.pipeline());
    sqlite3_bind_text(claim.get(), 1, config_.table.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(claim.get(), 2, pipeline.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(claim.get()) != SQLITE_DONE) fail("claiming positions of the earlier layout");
    claim.reset();
    db_->exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void SqliteSink::start() {
  std::lock_guard lock(mutex_);
  try {
    if (context_.reading_positions_only()) return open_to_read_positions();
    open();
  } catch (const FatalError&) {
    throw;
  } catch (const RetriableError&) {
    throw;
  } catch (const BusyError& e) {
    throw RetriableError(e.what());  // the host retries the start with backoff
  } catch (const std::exception& e) {
    throw FatalError(e.what());
  }
  context_.info("sqlite: rows into " + config_.table + " of " + config_.database + "; positions in " +
                config_.positions_table);
}

void SqliteSink::stop() {
  std::lock_guard lock(mutex_);
  upserts_.clear();
  read_position_.reset();
  store_position_.reset();
  db_.reset();
}

std::optional<std::int64_t> SqliteSink::read_position(std::string_view topic, std::int32_t partition) {
  sqlite3_stmt* s = read_position_.get();
  sqlite3_reset(s);
  const std::string pipeline(context_.pipeline()), t(topic);
  sqlite3_bind_text(s, 1, pipeline.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s, 2, config_.table.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s, 3, t.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(s, 4, partition);
  const int rc = sqlite3_step(s);
  std::optional<std::int64_t> position;
  if (rc == SQLITE_ROW) position = sqlite3_column_int64(s, 0);
  // Reset at once: a statement left on its row keeps a read transaction, and with it an
  // old snapshot, open; this connection's next BEGIN IMMEDIATE then fails with
  // SQLITE_BUSY_SNAPSHOT ("database is locked") for as long as another process has written
  // since — forever, as two processes sharing a file found out.
  sqlite3_reset(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) fail("reading the position of " + key_of(topic, partition));
  return position;
}

std::optional<std::int64_t> SqliteSink::stored_position(std::string_view topic, std::int32_t partition) {
  std::lock_guard lock(mutex_);
  if (!read_position_) return std::nullopt;  // read-only, and no positions table (or file) yet
  auto p = read_position(topic, partition);
  if (p) seen_positions_[key_of(topic, partition)] = *p;
  return p;
}

void SqliteSink::forget_position(std::string_view topic, std::int32_t partition) {
  std::lock_guard lock(mutex_);
  Statement s = db_->prepare("DELETE FROM " + identifier(config_.positions_table) +
                             " WHERE pipeline = ? AND destination = ? AND topic = ? AND partition = ?");
  const std::string pipeline(context_.pipeline()), t(topic);
  sqlite3_bind_text(s.get(), 1, pipeline.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s.get(), 2, config_.table.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(s.get(), 3, t.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(s.get(), 4, partition);
  if (sqlite3_step(s.get()) != SQLITE_DONE) fail("forgetting the position of " + key_of(topic, partition));
  seen_positions_.erase(key_of(topic, partition));
}

void SqliteSink::bind(sqlite3_stmt* s, int i, const Value* v) {
  if (!v || v->is_null()) sqlite3_bind_null(s, i);
  else if (const auto* n = v->as<std::int64_t>()) sqlite3_bind_int64(s, i, *n);
  else if (const auto* d = v->as<double>()) sqlite3_bind_double(s, i, *d);
  else if (const auto* b = v->as<bool>()) sqlite3_bind_int(s, i, *b ? 1 : 0);
  else if (const auto* t = v->as<std::string>()) sqlite3_bind_text(s, i, t->data(), static_cast<int>(t->size()), SQLITE_TRANSIENT);
  else if (const auto* x = v->as<Bytes>()) sqlite3_bind_blob(s, i, x->data.data(), static_cast<int>(x->data.size()), SQLITE_TRANSIENT);
  else if (const auto* ts = v->as<Timestamp>()) {
    std::string text = time::format_rfc3339(ts->micros_since_epoch);
    sqlite3_bind_text(s, i, text.c_str(), -1, SQLITE_TRANSIENT);
  } else {
    std::string text;
    json::append(*v, text);
    sqlite3_bind_text(s, i, text.c_str(), -1, SQLITE_TRANSIENT);
  }
}

// A row of a record a stage made (no source position), by its primary key.
std::string SqliteSink::row_key(const Record& r) {
  std::string key;
  for (std::size_t c : key_columns_) {
    const Value* v = columns_[c].field.read(r.value);
    if (!key.empty()) key += ", ";
    if (v) json::append(*v, key);
    else key += "null";
  }
  return key;
}

namespace {
// What SQLite adds as a number: integers, reals, booleans (bound as 0/1), and text that
// reads whole as a number (its type affinity converts it); other text would add 0.
bool is_number(const Value& v) {
  if (v.is<std::int64_t>() || v.is<bool>()) return true;
  if (const auto* d = v.as<double>()) return std::isfinite(*d);  // NaN would add as NULL, inf stay inf
  const auto* text = v.as<std::string>();
  if (!text || text->empty()) return false;
  double parsed = 0;
  const char* first = text->data() + (text->front() == '+' ? 1 : 0);
  auto [end, ec] = std::from_chars(first, text->data() + text->size(), parsed);
  return ec == std::errc() && end == text->data() + text->size() && std::isfinite(parsed);  // "inf" adds 0
}
}  // namespace

// A record without its key (SQLite lets a primary key column be NULL: each such row
// would be a new one) or without a number to add (NULL + count is NULL: the total would
// be wiped, as a count_by whose `as` is not the column's name did) is rejected.
void SqliteSink::prepare(Batch& batch) {
  std::lock_guard lock(mutex_);
  refused_.reject_in(batch, [this](const Record& r) { return row_key(r); });
  for (std::size_t i = 0; i < batch.records.size(); ++i) {
    const Record& r = batch.records[i];
    if (r.dropped) continue;
    for (std::size_t c : key_columns_) {
      if (rowid_key_) break;
      const Value* v = columns_[c].field.read(r.value);
      if (!v || v->is_null()) {
        batch.reject(i, "sqlite: no value for the key column " + columns_[c].name + " of " + config_.table +
                            " (field '" + columns_[c].field.name() + "')");
        break;
      }
    }
    if (r.dropped) continue;
    if (std::none_of(columns_.begin(), columns_.end(), [&](Column& c) { return c.field.read(r.value); })) {
      batch.reject(i, "sqlite: the record has none of the fields of " + config_.table +
                          "'s columns (map field names to columns with option columns)");
      continue;
    }
    for (std::size_t c = 0; c < columns_.size(); ++c) {
      const Value* v = columns_[c].field.read(r.value);
      const double* d = v ? v->as<double>() : nullptr;
      if (d && std::isnan(*d)) {  // SQLite stores a NaN as NULL: the value would be lost unsaid
        batch.reject(i, "sqlite: field '" + columns_[c].field.name() + "' for column " + columns_[c].name +
                            " holds NaN, which SQLite cannot store (it becomes NULL)");
        break;
      }
    }
    if (r.dropped) continue;
    for (std::size_t c : add_columns_) {
      const Value* v = columns_[c].field.read(r.value);
      if (!v || !is_number(*v)) {
        batch.reject(i, "sqlite: add = [\"" + columns_[c].name + "\"] needs a number in field '" +
                            columns_[c].field.name() + "', and the record has " +
                            (v ? "no number there" : "no such field") +
                            " (with count_by, its `as` names the field)");
        break;
      }
    }
  }
}

// The upsert of a record with fields for the columns `missing` has '0' at: a column the
// record has no field for is left out, so a new row takes its DEFAULT (or NULL, or the next
// rowid) and a row already there keeps its value.
sqlite3_stmt* SqliteSink::upsert_statement(const std::string& missing) {
  auto at = upserts_.find(missing);
  if (at != upserts_.end()) {
    at->second.used = ++upserts_used_;
    return at->second.statement.get();
  }
  if (upserts_.size() >= kMostUpserts)
    upserts_.erase(std::min_element(upserts_.begin(), upserts_.end(), [](const auto& a, const auto& b) {
      return a.second.used < b.second.used;
    }));
  std::string cols, marks, updates, conflict;
  for (std::size_t c = 0; c < columns_.size(); ++c) {
    if (missing[c] == '1') continue;
    const std::string name = identifier(columns_[c].name);
    cols += (cols.empty() ? "" : ", ") + name;
    marks += marks.empty() ? "?" : ", ?";
    if (std::find(key_columns_.begin(), key_columns_.end(), c) != key_columns_.end()) continue;
    const bool add = std::find(add_columns_.begin(), add_columns_.end(), c) != add_columns_.end();
    updates += (updates.empty() ? "" : ", ") + name + " = " +
               (add ? "coalesce(" + name + ", 0) + excluded." + name : "excluded." + name);
  }
  for (std::size_t k : key_columns_) conflict += (conflict.empty() ? "" : ", ") + identifier(columns_[k].name);
  Statement statement =
      db_->prepare("INSERT INTO " + identifier(config_.table) + " (" + cols + ") VALUES (" + marks +
                   ") ON CONFLICT (" + conflict + ") DO " + (updates.empty() ? "NOTHING" : "UPDATE SET " + updates));
  CachedUpsert& cached = upserts_[missing];  // once prepared: a failed prepare caches nothing
  cached.statement = std::move(statement);
  cached.used = ++upserts_used_;
  return cached.statement.get();
}

// Writes one record's row (insert, or update on its primary key); SQLite's result code.
int SqliteSink::upsert(const Record& r) {
  fields_.clear();
  std::string missing(columns_.size(), '0');
  for (std::size_t c = 0; c < columns_.size(); ++c) {
    fields_.push_back(columns_[c].field.read(r.value));
    if (!fields_.back()) missing[c] = '1';
  }
  sqlite3_stmt* s = upsert_statement(missing);
  sqlite3_reset(s);
  int index = 0;
  for (const Value* v : fields_)
    if (v) bind(s, ++index, v);
  return sqlite3_step(s);
}

// A refused row, to be rejected when its batch is read again: by its source position, or
// by its primary key when it has none (a row count_by made).
void SqliteSink::remember_refused(const Record& r, const std::string& what) {
  refused_.remember_row(r, "sqlite: table " + config_.table + " refused the row", what,
                        [this](const Record& row) { return row_key(row); });
}

// A deferred foreign key fails the COMMIT, not the row that broke it. Which rows did:
// in a transaction that is rolled back, each row is written under a savepoint and undone
// if SQLite then counts an unresolved foreign key (the rows kept before it left none).
// A row whose parent comes later in the batch (what deferring is for) is undone too, so
// the undone rows are tried again after the others, until a pass keeps none: what is
// left is refused. Each pass goes the other way: a chain of children before their
// parents (row i's parent is row i + 1) is kept whole by the second pass, where passes
// in one direction kept one row each (512 passes for a batch of 512). Throws
// PositionMismatch having remembered them (see refused.hpp); returns, with no
// transaction open, when no row breaks one alone.
void SqliteSink::refuse_deferred(const Batch& batch, const std::string& what) {
  sqlite3* db = db_->handle();
  const std::string doing = "finding the rows that break a foreign key";
  sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) fail(doing);
  std::vector<std::size_t> pending(batch.records.size());
  for (std::size_t i = 0; i < pending.size(); ++i) pending[i] = i;
  for (bool kept_some = true; kept_some && !pending.empty();) {
    kept_some = false;
    std::vector<std::size_t> undone;
    for (std::size_t i : pending) {
      if (sqlite3_exec(db, "SAVEPOINT pipehost_row", nullptr, nullptr, nullptr) != SQLITE_OK) fail(doing);
      if (upsert(batch.records[i]) != SQLITE_DONE) fail("writing a row of " + config_.table);
      int unresolved = 0, highest = 0;
      sqlite3_db_status(db, SQLITE_DBSTATUS_DEFERRED_FKS, &unresolved, &highest, 0);
      if (unresolved) {
        if (sqlite3_exec(db, "ROLLBACK TO pipehost_row", nullptr, nullptr, nullptr) != SQLITE_OK) fail(doing);
        undone.push_back(i);
      } else {
        kept_some = true;
      }
      if (sqlite3_exec(db, "RELEASE pipehost_row", nullptr, nullptr, nullptr) != SQLITE_OK) fail(doing);
    }
    std::reverse(undone.begin(), undone.end());
    pending.swap(undone);
  }
  sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  if (pending.empty()) return;
  for (std::size_t i : pending) remember_refused(batch.records[i], what);
  throw PositionMismatch("sqlite: table " + config_.table + " refused " + std::to_string(pending.size()) +
                         " row(s) at commit (a deferred foreign key); the batch is read again so "
                         "that they are rejected before it is written");
}

void SqliteSink::write(Batch& batch, BatchDone done) {
  std::lock_guard lock(mutex_);
  if (sqlite3_exec(db_->handle(), "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
    fail("beginning a transaction");
  try {
    // The table holds counts that fold the batch's records: every partition must continue
    // exactly where its stored position says; a batch every partition applied is skipped.
    const bool all_applied = applied_whole(
        batch,
        [&](const Span& span) {
          auto stored = read_position(span.topic, span.partition);
          const std::string key = key_of(span.topic, span.partition);
          if (!stored && seen_positions_.count(key))
            throw FatalError("sqlite: the position of " + key + " vanished from " +
                             config_.positions_table + " (it was " +
                             std::to_string(seen_positions_[key]) +
                             "): the file lost data, so counts cannot be exact any more");
          return stored;
        },
        "sqlite: " + config_.positions_table);
    if (all_applied) {
      sqlite3_exec(db_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
      batches_already_applied_.add();
      done(Status::ok());
      return;
    }
    // A row the table refuses fails only its own statement: the others go on, so that
    // every refused row of the batch is found in one pass.
    std::size_t refused = 0;
    for (const auto& r : batch.records) {
      if (upsert(r) == SQLITE_DONE) continue;
      if (!refused_by_table(sqlite3_extended_errcode(db_->handle())))
        fail("writing a row of " + config_.table);
      ++refused;
      remember_refused(r, sqlite3_errmsg(db_->handle()));
      // A constraint declared ON CONFLICT ROLLBACK ended the transaction: a row written
      // now would be committed on its own.
      if (sqlite3_get_autocommit(db_->handle())) break;
    }
    if (refused > 0) {
      throw PositionMismatch("sqlite: table " + config_.table + " refused " + std::to_string(refused) +
                             " row(s); the batch is read again so that they are rejected before "
                             "it is written");
    }
    const std::string pipeline(context_.pipeline());
    for (const Span& span : batch.spans) {
      sqlite3_stmt* s = store_position_.get();
      sqlite3_reset(s);
      const std::string topic(span.topic);
      sqlite3_bind_text(s, 1, pipeline.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(s, 2, config_.table.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(s, 3, topic.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_int(s, 4, span.partition);
      sqlite3_bind_int64(s, 5, span.next);
      if (sqlite3_step(s) != SQLITE_DONE) fail("storing the position of " + key_of(span.topic, span.partition));
    }
    if (sqlite3_exec(db_->handle(), "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      if (sqlite3_extended_errcode(db_->handle()) == SQLITE_CONSTRAINT_FOREIGNKEY) {
        const std::string what = sqlite3_errmsg(db_->handle());
        refuse_deferred(batch, what);  // PositionMismatch when rows break it alone
        throw FatalError("sqlite " + config_.database + ": committing to " + config_.table + ": " +
                         what + " (no row of the batch breaks it alone)");
      }
      fail("committing");
    }
  } catch (...) {
    sqlite3_exec(db_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  for (const Span& span : batch.spans) seen_positions_[key_of(span.topic, span.partition)] = span.next;
  refused_.written(batch);
  rows_out_.add(batch.records.size());
  done(Status::ok());
}

}  // namespace pipehost::sqlite
