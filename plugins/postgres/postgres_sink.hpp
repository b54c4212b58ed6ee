// postgres sink: rows into a PostgreSQL table, exactly once. Each batch is one
// transaction: the source positions of its partitions are locked and checked, the rows
// are loaded with COPY into a temporary table and inserted with ON CONFLICT (first write
// wins, or last), and the new positions are stored in positions_table (keyed by pipeline
// and destination table) — all or nothing.
// The Kafka source resumes from those positions, so a redelivered record is never
// written twice, and a database that lost writes makes the source read them again.
#pragma once
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <pqxx/connection>
#include <pqxx/except>
#include <pqxx/transaction_base>

#include <pipehost/refused.hpp>
#include <pipehost/sdk.hpp>

#include "table_layout.hpp"

namespace pipehost::postgres {

struct PostgresConfig {
  std::string url = "postgresql://127.0.0.1:5432/postgres";
  std::string table;
  StringMap columns;
  std::string on_conflict = "ignore";
  std::string positions_table = "pipehost_offsets";
  std::string schema_file;
  std::string log_each;
  int connect_timeout_ms = 5000;
  int lock_timeout_ms = 30000;

  static void declare(OptionList<PostgresConfig>& o);
  void check(Checker& c) const;
};

class PostgresSink final : public Sink {
 public:
  using Config = PostgresConfig;
  PostgresSink(const Config& config, Context& context);
  ~PostgresSink() override;

  void start() override;
  void prepare(Batch& batch) override;
  void write(Batch& batch, BatchDone done) override;
  void stop() override;
  std::optional<std::int64_t> stored_position(std::string_view topic, std::int32_t partition) override;
  void forget_position(std::string_view topic, std::int32_t partition) override;

 private:
  pqxx::connection& connection();  // connects (and prepares) when needed; RetriableError if it cannot
  void load_layout(pqxx::connection& c);
  void make_positions_table(pqxx::transaction_base& tx);
  void find_positions(pqxx::connection& c);
  void check_positions_key(pqxx::transaction_base& tx);
  void claim_positions_of_old_layout(pqxx::transaction_base& tx);
  void write_batch(const Batch& batch);
  void copy_rows(pqxx::transaction_base& tx, const std::vector<std::size_t>& rows);
  std::vector<std::string> insert_statements(pqxx::transaction_base& tx, const std::vector<std::size_t>& rows) const;
  std::string missing_not_null(const std::string& missing) const;
  std::string merged_rows(pqxx::transaction_base& tx, const std::vector<std::string>& keys,
                          const std::vector<std::size_t>& key_columns, const std::string& keyed_shapes) const;
  static bool refused_by_table(const pqxx::sql_error& e);
  std::vector<std::pair<std::size_t, std::string>> find_refused_rows(const std::vector<std::size_t>& rows);
  std::string row_key(const Record& r);
  [[noreturn]] void refuse(const Batch& batch,
                           const std::vector<std::pair<std::size_t, std::string>>& refused);
  [[noreturn]] void rethrow(const std::exception& e, const std::string& doing);

  Config config_;
  Context& context_;
  std::unique_ptr<pqxx::connection> connection_;
  TableLayout layout_;
  // Bumped when a reconnect reads a layout other than the last: lines_ were made for
  // lines_layout_, and a batch prepared for another layout is read again, not written.
  std::uint64_t layout_version_ = 0;
  std::uint64_t lines_layout_ = 0;
  std::vector<std::string> lines_;  // COPY text of the batch's kept records, in order
  // Per line, which of layout_.columns its record has no field for: an index in missing_,
  // whose strings hold '1' for such a column and '0' for the others.
  std::vector<std::size_t> missing_of_line_;
  std::vector<std::string> missing_;
  static constexpr std::size_t kMostKeptLineBytes = 16 * 1024;  // a slot's buffer past it is freed
  std::map<std::string, std::int64_t> seen_positions_;  // "topic:partition" -> what we stored
  bool positions_stored_ = true;         // false: read-only, and no positions table
  bool positions_by_destination_ = true; // false: a positions table of the earlier layout
  std::string destination_;  // the table's regclass name: the positions' key with the pipeline
  std::vector<std::string> log_columns_;  // the columns log_each names
  // Rows the table refused (a CHECK, a foreign key, varchar(n)...), found while writing;
  // rejected when the batch is read again (see refused.hpp).
  RefusedRecords refused_;
  std::mutex mutex_;
  Counter& rows_out_;
  Counter& rows_already_there_;
  Counter& records_already_applied_;
  std::chrono::steady_clock::time_point last_summary_ = std::chrono::steady_clock::now();
  std::uint64_t summary_rows_ = 0, summary_ignored_ = 0;
};

}  // namespace pipehost::postgres
