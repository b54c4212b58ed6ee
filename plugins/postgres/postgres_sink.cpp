// The postgres sink at run time: rows written by COPY into a temporary table, then into
// the table per on_conflict, with the positions, in one transaction per batch.
#include "postgres_shared.hpp"

#include <pqxx/tablewriter>

#include <algorithm>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <unordered_map>

#include <pipehost/json.hpp>
#include <pipehost/redact.hpp>
#include <pipehost/stored_positions.hpp>
#include <pipehost/utf8.hpp>

namespace pipehost::postgres {

PostgresSink::PostgresSink(const Config& config, Context& context)
    : config_(config), context_(context), rows_out_(context.counter("records_out")),
      rows_already_there_(context.counter("rows_already_there")),
      records_already_applied_(context.counter("records_already_applied")) {
  log_columns_ = placeholders(config_.log_each);
}

PostgresSink::~PostgresSink() = default;

void PostgresSink::start() {
  std::lock_guard lock(mutex_);
  connection();
  if (context_.reading_positions_only()) return;
  context_.info("postgres: rows into " + config_.table + " (" + join([&] {
                  std::vector<std::string> names;
                  for (const auto& col : layout_.columns) names.push_back(col.name);
                  return names;
                }(), ", ") + ") at " + redact::url(config_.url) +
                (layout_.primary_key.empty()
                     ? ", every record a new row (the table has no primary key for on_conflict to act on)"
                     : ", on conflict " + config_.on_conflict) +
                "; positions in " + config_.positions_table);
}

void PostgresSink::stop() {
  std::lock_guard lock(mutex_);
  connection_.reset();
}

[[noreturn]] void PostgresSink::rethrow(const std::exception& e, const std::string& doing) {
  // The server's message without the statement it quotes (LINE 1: ... and a caret).
  const bool from_server = dynamic_cast<const pqxx::sql_error*>(&e) != nullptr;
  const std::string what = "postgres " + redact::url(config_.url) + ": " + doing + ": " +
                           (from_server ? server_message(e.what()) : std::string(e.what()));
  if (dynamic_cast<const pqxx::broken_connection*>(&e) ||
      dynamic_cast<const pqxx::transaction_rollback*>(&e) ||  // deadlock, serialization failure
      dynamic_cast<const pqxx::in_doubt_error*>(&e)) {
    connection_.reset();
    throw RetriableError(what);
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    const std::string state = sql->sqlstate();
    // Connection lost, server shutting down, serialization failure, deadlock, a statement
    // cancelled (statement_timeout on a slow server, pg_cancel_backend), out of resources
    // (too many connections, out of memory, disk full; not 53400, a configured limit the
    // same statement meets again), a lock another session held past lock_timeout: try again.
    if (state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0 || state == "40001" || state == "40P01" ||
        state == "57014" || state == "55P03" || (state.rfind("53", 0) == 0 && state != "53400")) {
      connection_.reset();
      throw RetriableError(what);
    }
  }
  throw FatalError(what);
}

pqxx::connection& PostgresSink::connection() {
  if (connection_ && connection_->is_open()) return *connection_;
  connection_.reset();
  try {
    auto c = std::make_unique<pqxx::connection>(with_timeout(config_.url, config_.connect_timeout_ms));
    c->set_variable("lock_timeout", std::to_string(config_.lock_timeout_ms));
    // Text is UTF-8 (records' strings are checked to be): libpq's default is the
    // database's encoding, in which UTF-8 bytes were stored as other characters (LATIN1:
    // "é" became "Ã©"). A character the database cannot hold is refused (22P05), as any
    // value its column refuses.
    c->set_client_encoding("UTF8");
    if (context_.reading_positions_only()) {
      find_positions(*c);
      connection_ = std::move(c);
      return *connection_;
    }
    pqxx::work tx(*c);
    // Tasks start together: creating tables at once races in PostgreSQL's catalog.
    tx.exec("SELECT pg_advisory_xact_lock(hashtext('pipehost schema'))");
    make_positions_table(tx);
    check_positions_key(tx);
    if (!tx.exec("SELECT to_regclass(" + tx.quote(config_.table) + ") IS NOT NULL")[0][0].as<bool>()) {
      if (config_.schema_file.empty())
        throw FatalError("table " + config_.table + " does not exist (create it, or set schema_file)");
      std::ifstream in(config_.schema_file);
      std::stringstream sql;
      sql << in.rdbuf();
      tx.exec(sql.str());
      if (!tx.exec("SELECT to_regclass(" + tx.quote(config_.table) + ") IS NOT NULL")[0][0].as<bool>())
        throw FatalError("postgres: schema_file " + config_.schema_file + " ran but did not create table " +
                         config_.table + ": make table name the table the file creates, or fix the file");
    }
    // The table's own name (schema-qualified unless on the search path): positions are
    // per (pipeline, table), whichever way the config spells the table.
    destination_ = tx.exec("SELECT to_regclass(" + tx.quote(config_.table) + ")::text")[0][0].as<std::string>();
    claim_positions_of_old_layout(tx);
    tx.commit();
    load_layout(*c);
    connection_ = std::move(c);
  } catch (const FatalError&) {
    throw;
  } catch (const std::exception& e) {
    rethrow(e, "connecting and reading the table's columns");
  }
  return *connection_;
}

void PostgresSink::load_layout(pqxx::connection& c) {
  pqxx::work tx(c);
  TableLayout layout = read_layout(tx, config_, [](const char*, const std::string& message) {
    throw FatalError("postgres: " + message);
  });
  std::vector<std::string> quoted;
  for (const auto& col : layout.columns) quoted.push_back(tx.quote_name(col.name));
  tx.exec("CREATE TEMP TABLE IF NOT EXISTS pipehost_load ON COMMIT DELETE ROWS AS SELECT " +
          join(quoted, ", ") + ", 0::bigint AS pipehost_row, ''::text AS pipehost_missing FROM " + destination_ +
          " WITH NO DATA");
  tx.commit();
  auto shape = [](const TableLayout& l) {
    std::string text;
    // Each name with its length: a quoted identifier may hold any separator.
    auto add = [&](const std::string& part) { text += std::to_string(part.size()) + ':' + part; };
    for (const auto& col : l.columns)
      add(col.name), add(col.type_name), add(col.not_null ? "!" : ""), add(col.has_default ? "=" : "");
    for (const auto& k : l.primary_key) add(k);
    return text;
  };
  if (shape(layout) != shape(layout_)) ++layout_version_;
  layout_ = std::move(layout);
}

// Every record becomes a COPY line now, so a value its column cannot take is rejected
// before anything is written.
void PostgresSink::prepare(Batch& batch) {
  std::lock_guard lock(mutex_);
  connection();
  lines_layout_ = layout_version_;
  lines_.resize(batch.records.size());
  missing_of_line_.resize(batch.records.size());
  missing_.clear();
  std::size_t kept = 0;
  refused_.reject_in(batch, [this](const Record& r) { return row_key(r); });
  std::string missing;
  std::unordered_map<std::string, std::size_t> missing_index;
  for (std::size_t i = 0; i < batch.records.size(); ++i) {
    if (batch.records[i].dropped) continue;  // refused while writing it before
    std::string& line = lines_[kept];
    line.clear();
    // One large record must not keep its slot's buffer for good (a slot per batch record
    // per task: 512 of 1 MB ones held ~512 MB). Record storage is bounded alike.
    if (line.capacity() > kMostKeptLineBytes) line.shrink_to_fit();
    std::string problem;
    if (!batch.records[i].value.is<Struct>())
      problem = "the record has no decoded struct value (is a decoder configured before the sink?)";
    missing.assign(layout_.columns.size(), '0');
    for (std::size_t k = 0; problem.empty() && k < layout_.columns.size(); ++k) {
      if (k > 0) line += '\t';
      Column& col = layout_.columns[k];
      if (const Value* v = col.reader.read(batch.records[i].value)) {
        problem = append_copy_text(col, *v, line);
        continue;
      }
      // No such field: the column is left out of the row's INSERT (see insert_statements).
      missing[k] = '1';
      line += "\\N";
    }
    if (problem.empty()) problem = missing_not_null(missing);
    if (problem.empty() && missing.find('0') == std::string::npos)
      problem = "the record has none of the fields of " + config_.table +
                "'s columns (map field names to columns with option columns)";
    if (!problem.empty()) {
      batch.reject(i, "postgres: " + problem);
      continue;
    }
    (line += '\t') += missing;
    auto [at, added] = missing_index.try_emplace(missing, missing_.size());
    if (added) missing_.push_back(missing);
    missing_of_line_[kept++] = at->second;
  }
  lines_.resize(kept);
  missing_of_line_.resize(kept);
}

// A NOT NULL column without a DEFAULT that the record has no field for: the row could
// never be inserted. To update, a record with the whole key may still leave the column as
// the table's row has it (see insert_statements); a new key is refused by the table.
std::string PostgresSink::missing_not_null(const std::string& missing) const {
  bool whole_key = config_.on_conflict == "update" && !layout_.primary_key.empty();
  for (std::size_t k = 0; whole_key && k < layout_.columns.size(); ++k)
    if (missing[k] == '1' && std::find(layout_.primary_key.begin(), layout_.primary_key.end(),
                                       layout_.columns[k].name) != layout_.primary_key.end())
      whole_key = false;
  if (whole_key) return {};
  for (std::size_t k = 0; k < layout_.columns.size(); ++k) {
    const Column& col = layout_.columns[k];
    if (missing[k] == '1' && col.not_null && !col.has_default)
      return "the record has no field '" + col.field + "', and column " + col.name + " is NOT NULL with no DEFAULT";
  }
  return {};
}

void PostgresSink::write(Batch& batch, BatchDone done) {
  std::lock_guard lock(mutex_);
  if (lines_.size() != batch.records.size())
    throw FatalError("postgres: write without prepare (the host calls prepare first)");
  write_batch(batch);
  done(Status::ok());
}

void PostgresSink::write_batch(const Batch& batch) {
  pqxx::connection& c = connection();
  // A reconnect since prepare (a retry after the connection broke) found the table
  // altered: the COPY lines were made for its old columns.
  if (lines_layout_ != layout_version_)
    throw PositionMismatch("postgres: the columns of " + config_.table +
                           " changed while a batch was being written; the batch is read again");
  std::vector<std::size_t> to_write;  // the records not written before, in order
  try {
    pqxx::work tx(c);
    const std::string pipeline = tx.quote(std::string(context_.pipeline()));
    const std::string positions = tx.quote_name(config_.positions_table);
    const std::string destination = tx.quote(destination_);
    // Lock and read the positions of the batch's partitions: the compare of compare-and-set.
    std::map<std::string, std::int64_t> stored;
    if (!batch.spans.empty()) {
      std::string which;
      for (const auto& s : batch.spans)
        which += (which.empty() ? "" : ", ") + std::string("(") + tx.quote(std::string(s.topic)) +
                 ", " + std::to_string(s.partition) + ")";
      for (const auto& row : tx.exec("SELECT topic, partition, next_offset FROM " + positions +
                                     " WHERE pipeline = " + pipeline + " AND destination = " + destination +
                                     " AND (topic, partition) IN (" + which + ") FOR UPDATE"))
        stored[position_key(row[0].as<std::string>(), row[1].as<int>())] = row[2].as<std::int64_t>();
    }
    for (const auto& s : batch.spans) {
      const std::string key = position_key(s.topic, s.partition);
      auto at = stored.find(key);
      if (at == stored.end() && seen_positions_.count(key))
        throw FatalError("postgres: the position of " + key + " vanished from " + config_.positions_table +
                         " (it was " + std::to_string(seen_positions_[key]) +
                         "): the database lost data, so rows cannot be written exactly once "
                         "any more; restore it, or clear the table and reset the group's offsets");
      if (at != stored.end() && s.from >= 0 && at->second < s.from)
        throw PositionMismatch("postgres: " + config_.positions_table + " holds position " +
                               std::to_string(at->second) + " for " + key +
                               " but this batch continues from " + std::to_string(s.from) +
                               ": the database lost writes (restored from a backup, a failover)");
    }
    // Records at offsets already stored were written by an earlier transaction. Records
    // with no source position (rows that fold several records) go with the whole batch.
    std::uint64_t applied_before = 0;
    std::optional<bool> folded_applied;
    for (std::size_t i = 0; i < batch.records.size(); ++i) {
      const Origin& o = batch.records[i].origin;
      if (o.partition < 0 && !batch.spans.empty()) {
        auto stored_of = [&](const Span& span) {
          auto at = stored.find(position_key(span.topic, span.partition));
          return at == stored.end() ? std::nullopt : std::optional<std::int64_t>(at->second);
        };
        if (!folded_applied)
          folded_applied = applied_whole(batch, stored_of, "postgres: " + config_.positions_table);
        if (*folded_applied) {
          ++applied_before;
          continue;
        }
      } else if (o.partition >= 0) {
        auto at = stored.find(position_key(o.topic, o.partition));
        if (at != stored.end() && o.offset < at->second) {
          ++applied_before;
          continue;
        }
      }
      to_write.push_back(i);
    }
    const std::uint64_t rows = to_write.size();
    copy_rows(tx, to_write);
    std::string returning;
    if (!log_columns_.empty()) {
      std::vector<std::string> q;
      for (const auto& l : log_columns_) q.push_back(tx.quote_name(l));
      returning = " RETURNING " + join(q, ", ");
    }
    std::vector<pqxx::result> inserted;
    for (const auto& statement : insert_statements(tx, to_write)) inserted.push_back(tx.exec(statement + returning));
    // The set of compare-and-set. A position stored before is locked (FOR UPDATE above);
    // a first one is inserted only if no other writer inserted it meanwhile (SELECT ...
    // FOR UPDATE locks no row that is not there): else that writer's data stand, and
    // this batch is read again from the position it stored.
    std::string updates, firsts;
    std::size_t first_count = 0;
    for (const auto& s : batch.spans) {
      auto at = stored.find(position_key(s.topic, s.partition));
      if (at != stored.end() && at->second >= s.next) continue;
      std::string& values = at == stored.end() ? firsts : updates;
      first_count += at == stored.end();
      values += (values.empty() ? "" : ", ") + std::string("(") + pipeline + ", " + destination + ", " +
                tx.quote(std::string(s.topic)) + ", " + std::to_string(s.partition) + ", " +
                std::to_string(s.next) + ")";
    }
    const std::string insert_positions =
        "INSERT INTO " + positions + " (pipeline, destination, topic, partition, next_offset) VALUES ";
    if (!updates.empty())
      tx.exec(insert_positions + updates +
              " ON CONFLICT (pipeline, destination, topic, partition) DO UPDATE SET next_offset = "
              "EXCLUDED.next_offset");
    if (!firsts.empty() &&
        tx.exec(insert_positions + firsts + " ON CONFLICT (pipeline, destination, topic, partition) DO NOTHING")
                .affected_rows() != first_count)
      throw PositionMismatch("postgres: another writer stored a first position in " + config_.positions_table +
                             " for a partition of this batch at the same time; the batch is read again");
    tx.commit();
    refused_.written(batch);
    for (const auto& s : batch.spans) {
      std::int64_t& seen = seen_positions_[position_key(s.topic, s.partition)];
      seen = std::max(seen, s.next);
    }
    std::uint64_t written = 0;
    for (const auto& r : inserted) written += static_cast<std::uint64_t>(r.affected_rows());
    rows_out_.add(written);
    rows_already_there_.add(rows - std::min(rows, written));
    records_already_applied_.add(applied_before);
    for (const auto& result : inserted) {
      for (const auto& row : result) {
        std::string line = config_.log_each;
        for (std::size_t k = 0; k < log_columns_.size(); ++k) {
          const std::string placeholder = "{" + log_columns_[k] + "}";
          line.replace(line.find(placeholder), placeholder.size(), row[static_cast<int>(k)].c_str());
        }
        context_.info(line);
      }
    }
    summary_rows_ += written;
    summary_ignored_ += rows - std::min(rows, written);
    if (std::chrono::steady_clock::now() - last_summary_ > std::chrono::seconds(10)) {
      context_.info("postgres: stored " + std::to_string(summary_rows_) + " rows in " + config_.table +
                    " in the last 10 s (" + std::to_string(summary_ignored_) + " already there)");
      summary_rows_ = summary_ignored_ = 0;
      last_summary_ = std::chrono::steady_clock::now();
    }
  } catch (const PositionMismatch&) {
    throw;
  } catch (const FatalError&) {
    throw;
  } catch (const pqxx::sql_error& e) {
    if (refused_by_table(e)) {
      auto refused = find_refused_rows(to_write);
      if (!refused.empty()) refuse(batch, refused);
    }
    rethrow(e, "writing " + std::to_string(batch.records.size()) + " rows");
  } catch (const std::exception& e) {
    rethrow(e, "writing " + std::to_string(batch.records.size()) + " rows");
  }
}

// The lines of `rows` into the temporary table, each with its index in the batch. The
// lines are escaped for COPY's text format already (table_layout.cpp); libpqxx 6.4's
// stream_to keeps its raw-line write private, so its deprecated tablewriter, which has
// it public, sends them.
void PostgresSink::copy_rows(pqxx::transaction_base& tx, const std::vector<std::size_t>& rows) {
  std::vector<std::string> load_columns;
  // libpqxx 6.4's tablewriter puts the names in its COPY statement as they are.
  for (const auto& col : layout_.columns) load_columns.push_back(tx.quote_name(col.name));
  load_columns.push_back("pipehost_missing");
  load_columns.push_back("pipehost_row");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  pqxx::tablewriter copy(tx, "pipehost_load", load_columns.begin(), load_columns.end());
  for (std::size_t i : rows) copy.write_raw_line(lines_[i] + '\t' + std::to_string(i));
  copy.complete();
#pragma GCC diagnostic pop
}

// From the temporary table into the table, per on_conflict: one statement per set of
// columns the rows' records have no field for (one, for records of one shape). Such a
// column is left out of the INSERT, so a new row takes its DEFAULT (serial, now()) or
// NULL, and on_conflict = update leaves it as it was in a row already there.
std::vector<std::string> PostgresSink::insert_statements(pqxx::transaction_base& tx,
                                                         const std::vector<std::size_t>& rows) const {
  std::set<std::size_t> used;
  for (std::size_t i : rows) used.insert(missing_of_line_[i]);
  std::vector<std::string> keys;
  std::vector<std::size_t> key_columns;
  for (const auto& k : layout_.primary_key) {
    keys.push_back(tx.quote_name(k));
    for (std::size_t c = 0; c < layout_.columns.size(); ++c)
      if (layout_.columns[c].name == k) key_columns.push_back(c);
  }
  const bool update = config_.on_conflict == "update";
  auto has_keys = [&](const std::string& missing) {
    return std::all_of(key_columns.begin(), key_columns.end(), [&](std::size_t c) { return missing[c] == '0'; });
  };
  std::string keyed_shapes;
  for (std::size_t m : used)
    if (has_keys(missing_[m])) keyed_shapes += (keyed_shapes.empty() ? "" : ", ") + tx.quote(missing_[m]);
  // Of the rows whose records give the whole key: to ignore, the first of each key as it
  // is; to update, one row per key as the key's records applied in turn would leave it
  // (merged_rows), with the shape of what they gave between them.
  std::string pick;
  std::vector<std::string> shapes;
  for (std::size_t m : used) shapes.push_back(missing_[m]);
  if (used.size() > 1 && !keys.empty() && !keyed_shapes.empty()) {
    if (update) {
      pick = merged_rows(tx, keys, key_columns, keyed_shapes);
      std::erase_if(shapes, has_keys);
      for (const auto& row : tx.exec("SELECT DISTINCT pipehost_missing FROM (" + pick + ") AS pipehost_pick"))
        shapes.push_back(row[0].as<std::string>());
    } else {
      pick = "SELECT DISTINCT ON (" + join(keys, ", ") + ") * FROM pipehost_load WHERE pipehost_missing IN (" +
             keyed_shapes + ") ORDER BY " + join(keys, ", ") + ", pipehost_row";
    }
  }
  std::vector<std::string> statements;
  for (const std::string& missing : shapes) {
    std::vector<std::string> cols, set;
    for (std::size_t c = 0; c < layout_.columns.size(); ++c) {
      if (missing[c] == '1') continue;
      cols.push_back(tx.quote_name(layout_.columns[c].name));
      if (std::find(key_columns.begin(), key_columns.end(), c) == key_columns.end())
        set.push_back(cols.back() + " = EXCLUDED." + cols.back());
    }
    std::string select = "SELECT ";
    const std::string shape = used.size() == 1 ? "" : " WHERE pipehost_missing = " + tx.quote(missing);
    if (keys.empty() || !has_keys(missing)) {
      // Every record a new row (no key, or one the table makes: serial): in batch order.
      select += join(cols, ", ") + " FROM pipehost_load" + shape + " ORDER BY pipehost_row";
    } else if (used.size() == 1) {
      // The first of each key (the last, to update), inserted in key order: tasks writing
      // the same keys then lock them in one order and cannot deadlock.
      select += "DISTINCT ON (" + join(keys, ", ") + ") " + join(cols, ", ") + " FROM pipehost_load ORDER BY " +
                join(keys, ", ") + ", pipehost_row" + (update ? " DESC" : "");
    } else {
      select += join(cols, ", ") + " FROM (" + pick + ") AS pipehost_pick" + shape + " ORDER BY " + join(keys, ", ");
    }
    // To update, a NOT NULL column without a DEFAULT that the records leave out: PostgreSQL
    // checks NOT NULL on the row an upsert proposes, before it finds the conflict, so the
    // row proposed carries the value the table's row has (none for a new key: refused).
    std::vector<std::string> kept;
    for (std::size_t c = 0; update && !keys.empty() && has_keys(missing) && c < layout_.columns.size(); ++c)
      if (missing[c] == '1' && layout_.columns[c].not_null && !layout_.columns[c].has_default)
        kept.push_back(tx.quote_name(layout_.columns[c].name));
    std::string insert;
    if (kept.empty()) {
      insert = "INSERT INTO " + destination_ + " (" + join(cols, ", ") + ") " + select;
    } else {
      std::vector<std::string> from_records, from_row, same_key, in_key_order;
      for (const auto& c : cols) from_records.push_back("pipehost_src." + c);
      for (const auto& c : kept) from_row.push_back("pipehost_row_now." + c);
      for (const auto& k : keys) {
        same_key.push_back("pipehost_row_now." + k + " = pipehost_src." + k);
        in_key_order.push_back("pipehost_src." + k);
      }
      insert = "INSERT INTO " + destination_ + " (" + join(cols, ", ") + ", " + join(kept, ", ") + ") SELECT " +
               join(from_records, ", ") + ", " + join(from_row, ", ") + " FROM (" + select +
               ") AS pipehost_src LEFT JOIN " + destination_ + " AS pipehost_row_now ON " +
               join(same_key, " AND ") + " ORDER BY " + join(in_key_order, ", ");
    }
    // Only the primary key is the conflict target: a row that breaks another unique index
    // or an exclusion constraint is refused (and dead-lettered), not silently dropped as a
    // bare ON CONFLICT DO NOTHING did.
    if (!keys.empty())
      insert += " ON CONFLICT (" + join(keys, ", ") + ") " +
                (update && !set.empty() ? "DO UPDATE SET " + join(set, ", ") : "DO NOTHING");
    statements.push_back(std::move(insert));
  }
  return statements;
}

// One row per key of the rows in `keyed_shapes`, as applying its records in batch order
// would leave the table's row: each column from the last record that has a field for it
// (a record without one leaves the column as it was), and as shape (pipehost_missing) the
// columns none of them has. Window functions, not array_agg: a column may hold arrays.
std::string PostgresSink::merged_rows(pqxx::transaction_base& tx, const std::vector<std::string>& keys,
                                      const std::vector<std::size_t>& key_columns,
                                      const std::string& keyed_shapes) const {
  std::vector<std::string> columns, shape;
  for (std::size_t c = 0; c < layout_.columns.size(); ++c) {
    const std::string name = tx.quote_name(layout_.columns[c].name);
    const std::string flag = "substr(pipehost_missing, " + std::to_string(c + 1) + ", 1)";
    shape.push_back("min(" + flag + ") OVER pipehost_key");
    if (std::find(key_columns.begin(), key_columns.end(), c) != key_columns.end())
      columns.push_back(name);
    else
      columns.push_back("first_value(" + name + ") OVER (pipehost_key ORDER BY " + flag + ", pipehost_row DESC) AS " +
                        name);
  }
  return "SELECT DISTINCT ON (" + join(keys, ", ") + ") " + join(columns, ", ") + ", " + join(shape, " || ") +
         " AS pipehost_missing FROM pipehost_load WHERE pipehost_missing IN (" + keyed_shapes +
         ") WINDOW pipehost_key AS (PARTITION BY " + join(keys, ", ") + ") ORDER BY " + join(keys, ", ");
}

// A data exception (a value too long for varchar(n), numeric(p, s) overflow), an
// integrity violation (CHECK, foreign key, a unique index besides the conflict target), a
// trigger's RAISE EXCEPTION (P0001) or a value past a limit of the table (54000: a key
// too big for its index, a row too big): the table refuses a row for what it holds, and
// the other rows may be fine. If no row is refused alone, the error stays fatal (write).
bool PostgresSink::refused_by_table(const pqxx::sql_error& e) {
  const std::string state = e.sqlstate();
  return state.rfind("22", 0) == 0 || state.rfind("23", 0) == 0 || state == "P0001" || state == "54000";
}

// Which rows the table refuses: each is written alone under a savepoint, in a
// transaction that is rolled back, so nothing is kept. Constraints are checked at once
// (deferred ones too). Rare, so one row at a time (a few round trips each) is fine.
std::vector<std::pair<std::size_t, std::string>> PostgresSink::find_refused_rows(
    const std::vector<std::size_t>& rows) {
  std::vector<std::pair<std::size_t, std::string>> refused;
  try {
    pqxx::work tx(connection());
    tx.exec("SET CONSTRAINTS ALL IMMEDIATE");
    for (std::size_t i : rows) {
      try {
        pqxx::subtransaction row(tx, "pipehost_row");
        copy_rows(row, {i});
        for (const auto& statement : insert_statements(row, {i})) row.exec(statement);
        row.exec("DELETE FROM pipehost_load");
        row.commit();
      } catch (const pqxx::sql_error& e) {
        if (!refused_by_table(e)) throw;
        refused.emplace_back(i, server_message(e.what()));
      }
    }
    tx.abort();
  } catch (const std::exception& e) {
    rethrow(e, "finding the rows " + config_.table + " refuses");
  }
  return refused;
}

// A row of a record a stage made (no source position), by its primary key's values (all
// its columns' when the table has none), as refused.hpp remembers it.
std::string PostgresSink::row_key(const Record& r) {
  std::string key;
  for (Column& col : layout_.columns) {
    const auto& pk = layout_.primary_key;
    if (!pk.empty() && std::find(pk.begin(), pk.end(), col.name) == pk.end()) continue;
    if (!key.empty()) key += ", ";
    if (const Value* v = col.reader.read(r.value)) json::append(*v, key);
    else key += "null";
  }
  return key;
}

// Has the refused rows rejected without writing anything (see refused.hpp).
void PostgresSink::refuse(const Batch& batch,
                          const std::vector<std::pair<std::size_t, std::string>>& refused) {
  const std::string why = "postgres: table " + config_.table + " refused the row";
  for (const auto& [i, message] : refused)
    refused_.remember_row(batch.records[i], why, message, [this](const Record& r) { return row_key(r); });
  throw PositionMismatch("postgres: table " + config_.table + " refused " +
                         std::to_string(refused.size()) +
                         " row(s); the batch is read again so that they are rejected before it "
                         "is written");
}

}  // namespace pipehost::postgres
