// sqlite sink: each record upserted into a table of an existing SQLite file — columns
// listed in `add` are summed on conflict (count = count + excluded.count), the others
// replaced — exactly once: the batch's source positions are stored in a pipehost table
// of the same file, in the same transaction. The structure of the user's tables is never
// changed. WAL and a busy timeout let another process read at any time and two writers
// (two pipehost processes of one consumer group) take turns without losing an increment.
//
// Positions are checked per batch, not per record (a count_by stage before the sink has
// folded records into counts): a batch whose partitions do not all continue exactly from
// the stored positions is refused, and the source reads again from them.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <pipehost/refused.hpp>
#include <pipehost/sdk.hpp>

#include "database.hpp"

namespace pipehost::sqlite {

struct SqliteConfig {
  std::string database;
  std::optional<std::string> template_file;
  std::string table;
  StringMap columns;
  std::vector<std::string> add;
  std::string positions_table = "pipehost_offsets";
  int busy_timeout_ms = 10000;
  bool foreign_keys = false;

  static void declare(OptionList<SqliteConfig>& o);
  void check(Checker& c) const;
};

// The table's columns and primary key. What of the config the table contradicts goes to
// `problem(option, message)`: at start it stops the sink, in a check it is reported at
// the option.
void read_table(Database& db, const SqliteConfig& config, std::vector<std::string>& names,
                std::vector<std::string>& keys, const std::function<void(const char*, const std::string&)>& problem,
                bool* rowid_key = nullptr);

class SqliteSink final : public Sink {
 public:
  using Config = SqliteConfig;
  SqliteSink(const Config& config, Context& context);
  ~SqliteSink() override;
  void start() override;
  void prepare(Batch& batch) override;
  void write(Batch& batch, BatchDone done) override;
  void stop() override;
  std::optional<std::int64_t> stored_position(std::string_view topic, std::int32_t partition) override;
  void forget_position(std::string_view topic, std::int32_t partition) override;

 private:
  struct Column {
    std::string name;
    FieldReader field{""};
  };
  void open();
  struct PositionsLayout {
    bool exists = false;
    bool has_destination = false;
  };
  PositionsLayout positions_layout();
  void open_to_read_positions();
  void make_positions_table();
  std::optional<std::int64_t> read_position(std::string_view topic, std::int32_t partition);
  void bind(sqlite3_stmt* s, int index, const Value* v);
  std::string row_key(const Record& r);
  sqlite3_stmt* upsert_statement(const std::string& missing);
  int upsert(const Record& r);
  void remember_refused(const Record& r, const std::string& what);
  void refuse_deferred(const Batch& batch, const std::string& what);
  [[noreturn]] void fail(const std::string& doing);

  Config config_;
  Context& context_;
  std::unique_ptr<Database> db_;
  std::vector<Column> columns_;
  std::vector<std::size_t> key_columns_;  // indices in columns_ of the primary key
  std::vector<std::size_t> add_columns_;  // ... and of the `add` columns
  bool rowid_key_ = false;  // the key is INTEGER PRIMARY KEY: NULL is a new row id
  // Rows the table refused (a CHECK, NOT NULL, a STRICT type...), found while writing;
  // rejected when the batch is read again (see refused.hpp). count_by's counts have no
  // source position: they are remembered by primary key (row_key).
  RefusedRecords refused_;
  // By the columns a record has no field for ('1'), one upsert each (see upsert_statement);
  // the least recently used goes past 64 (records of ever new shapes, JSON), where
  // clearing them all made a source cycling through 65 shapes prepare every statement again.
  struct CachedUpsert {
    Statement statement;
    std::uint64_t used = 0;
  };
  static constexpr std::size_t kMostUpserts = 64;
  std::map<std::string, CachedUpsert> upserts_;
  std::uint64_t upserts_used_ = 0;
  std::vector<const Value*> fields_;  // the record being written, per column
  Statement read_position_, store_position_;
  std::map<std::string, std::int64_t> seen_positions_;
  std::mutex mutex_;
  Counter& rows_out_;
  Counter& batches_already_applied_;
};

}  // namespace pipehost::sqlite
