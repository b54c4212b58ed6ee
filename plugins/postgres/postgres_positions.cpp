// Where the postgres sink keeps its positions: a table of (pipeline, destination, topic,
// partition) rows, written in the same transaction as the rows they account for.
#include "postgres_shared.hpp"

namespace pipehost::postgres {

// Positions are kept per (pipeline, destination table, topic, partition): a pipeline
// pointed at a new table starts that table from the group's offsets, not from where it
// had got in the old one (which would write nothing of what came before).
void PostgresSink::make_positions_table(pqxx::transaction_base& tx) {
  const std::string positions = tx.quote_name(config_.positions_table);
  const std::string regclass = "to_regclass(" + tx.quote(tx.quote_name(config_.positions_table)) + ")";
  // CREATE TABLE IF NOT EXISTS needs the right to create in the schema even when the
  // table is there (PostgreSQL 15 no longer grants it on public): a role that may only
  // read and write existing tables could never start.
  if (tx.exec("SELECT " + regclass + " IS NULL")[0][0].as<bool>())
    tx.exec("CREATE TABLE IF NOT EXISTS " + positions +
            " (pipeline text, destination text, topic text, partition integer, next_offset bigint NOT NULL, "
            "PRIMARY KEY (pipeline, destination, topic, partition))");
  if (!tx.exec("SELECT 1 FROM pg_attribute WHERE attrelid = " + regclass +
               " AND attname = 'destination' AND NOT attisdropped").empty())
    return;
  // A table of pipehost before positions were per table (pipeline, topic, partition):
  // the destination joins the key; rows are claimed as each pipeline starts (below).
  auto pk = tx.exec("SELECT conname FROM pg_constraint WHERE conrelid = " + regclass + " AND contype = 'p'");
  tx.exec("ALTER TABLE " + positions + " ADD COLUMN destination text NOT NULL DEFAULT ''");
  if (!pk.empty()) tx.exec("ALTER TABLE " + positions + " DROP CONSTRAINT " + tx.quote_name(pk[0][0].c_str()));
  tx.exec("ALTER TABLE " + positions + " ADD PRIMARY KEY (pipeline, destination, topic, partition)");
  context_.info("postgres: " + config_.positions_table + " now keeps positions per destination table too");
}

// A positions table made by someone else (a DBA, ahead of time) must have the key the
// sink's upsert names: without it the first write failed with "there is no unique or
// exclusion constraint matching the ON CONFLICT specification", naming neither.
void PostgresSink::check_positions_key(pqxx::transaction_base& tx) {
  const std::string regclass = "to_regclass(" + tx.quote(tx.quote_name(config_.positions_table)) + ")";
  const bool keyed = !tx.exec(
      "SELECT 1 FROM pg_index i WHERE i.indrelid = " + regclass + " AND i.indisunique AND i.indpred IS NULL AND "
      "(SELECT array_agg(a.attname::text ORDER BY a.attname::text) FROM pg_attribute a "
      " WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)) = ARRAY['destination','partition','pipeline','topic']")
                           .empty();
  if (!keyed)
    throw FatalError("postgres: positions table " + config_.positions_table +
                     " has no primary key on (pipeline, destination, topic, partition), which storing "
                     "positions needs: add PRIMARY KEY (pipeline, destination, topic, partition), or drop "
                     "the table to have the sink make it (option positions_table)");
}

// Rows stored before positions were per table belong to the table the pipeline wrote
// then: most likely this one (the upgrade of an unchanged config resumes where it was).
void PostgresSink::claim_positions_of_old_layout(pqxx::transaction_base& tx) {
  tx.exec("UPDATE " + tx.quote_name(config_.positions_table) + " SET destination = " + tx.quote(destination_) +
          " WHERE pipeline = " + tx.quote(std::string(context_.pipeline())) + " AND destination = ''");
}

// For `pipehost positions`: where the positions are, creating and migrating nothing.
// Without the positions table or the destination table, none is stored.
void PostgresSink::find_positions(pqxx::connection& c) {
  pqxx::read_transaction tx(c);
  const auto exists = [&](const std::string& name) {
    return tx.exec("SELECT to_regclass(" + tx.quote(name) + ") IS NOT NULL")[0][0].as<bool>();
  };
  positions_stored_ = exists(tx.quote_name(config_.positions_table)) && exists(config_.table);
  if (!positions_stored_) return;
  destination_ = tx.exec("SELECT to_regclass(" + tx.quote(config_.table) + ")::text")[0][0].as<std::string>();
  // A table of the earlier layout (no destination column): its rows are this pipeline's,
  // claimed for its table at its next start.
  positions_by_destination_ =
      !tx.exec("SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(" +
               tx.quote(tx.quote_name(config_.positions_table)) + ") AND attname = 'destination' AND NOT attisdropped")
           .empty();
}

std::optional<std::int64_t> PostgresSink::stored_position(std::string_view topic, std::int32_t partition) {
  std::lock_guard lock(mutex_);
  pqxx::connection& c = connection();
  if (!positions_stored_) return std::nullopt;  // read-only, and no positions table yet
  try {
    pqxx::work tx(c);
    auto r = tx.exec("SELECT next_offset FROM " + tx.quote_name(config_.positions_table) +
                     " WHERE pipeline = " + tx.quote(std::string(context_.pipeline())) +
                     (positions_by_destination_ ? " AND destination = " + tx.quote(destination_) : "") +
                     " AND topic = " + tx.quote(std::string(topic)) +
                     " AND partition = " + std::to_string(partition));
    tx.commit();
    if (r.empty()) return std::nullopt;
    const auto offset = r[0][0].as<std::int64_t>();
    seen_positions_[position_key(topic, partition)] = offset;
    return offset;
  } catch (const std::exception& e) {
    rethrow(e, "reading the stored position of " + position_key(topic, partition));
  }
}

void PostgresSink::forget_position(std::string_view topic, std::int32_t partition) {
  std::lock_guard lock(mutex_);
  pqxx::connection& c = connection();
  try {
    pqxx::work tx(c);
    tx.exec("DELETE FROM " + tx.quote_name(config_.positions_table) +
            " WHERE pipeline = " + tx.quote(std::string(context_.pipeline())) +
            " AND destination = " + tx.quote(destination_) + " AND topic = " + tx.quote(std::string(topic)) + " AND partition = " + std::to_string(partition));
    tx.commit();
    seen_positions_.erase(position_key(topic, partition));
  } catch (const std::exception& e) {
    rethrow(e, "forgetting the stored position of " + position_key(topic, partition));
  }
}

}  // namespace pipehost::postgres
