// Contender (a) of the trades pipeline (seed 002): N consumer-group members (threads),
// each with pipehost's kafka source settings and its own libpq connection. A member polls
// batches the way the source does (wait for one message, then take what is queued, up to
// the batch size); each record is parsed with simdjson On-Demand and checked as the bench
// config's field_rules do (the 7 fields present and not null, id a string matching
// T[0-9]+, version an integer >= 0; matures_at and created_at RFC 3339 strings, as the
// postgres sink requires of a timestamptz column); a record failing a check is counted
// and skipped (no dead letters: the bench input has none). Each batch is one transaction,
// as pipehost's postgres sink does it: the stored positions of the batch's partitions are
// locked (SELECT ... FOR UPDATE) and records below them skipped, the rows are sent with
// COPY into a temporary table and inserted with INSERT ... SELECT DISTINCT ON (id,
// version) ... ON CONFLICT DO NOTHING (first write wins), the new positions are upserted
// into the positions table, COMMIT; then the offsets are committed to the group
// (asynchronously). On assignment a member resumes from the stored positions: exactly once.
// Ends when every partition of the topic has been read to its end by whichever member owns
// it (--stop-at-end 1, default), or on SIGTERM/SIGINT.
//
// usage: trades_baseline --brokers B --topic T --group G --pg CONNINFO [--table trades]
//          [--positions-table baseline_offsets] [--pipeline trades_baseline]
//          [--threads 3] [--batch 512] [--props k=v,...] [--stop-at-end 1]
// Prints one JSON line: records, rejected, seconds, latency (CreateTime to COMMIT)
// percentiles, librdkafka version and settings.
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <simdjson.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

#include "common.hpp"

namespace {

namespace od = simdjson::ondemand;

std::atomic<bool> stopping{false};
void on_signal(int) { stopping = true; }

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "trades_baseline: %s\n", what.c_str());
  std::exit(1);
}

// As in consume_baseline: the process ends when every partition of the topic has been
// read to its end by whichever member owns it.
std::mutex end_mutex;
std::map<std::int32_t, bool> topic_at_end;
void mark_end(std::int32_t p, bool at_end) {
  std::lock_guard lock(end_mutex);
  topic_at_end[p] = at_end;
}
bool topic_read_to_end() {
  std::lock_guard lock(end_mutex);
  for (auto& [p, e] : topic_at_end)
    if (!e) return false;
  return !topic_at_end.empty();
}

struct Settings {
  std::string brokers, topic, group, pg, table, positions_table, pipeline, props;
  int batch = 512;
  bool stop_at_end = true;
};

std::vector<std::pair<std::string, std::string>> consumer_settings(const Settings& s) {
  std::vector<std::pair<std::string, std::string>> v = {
      // pipehost's kafka source defaults (plugins/kafka/kafka_source.cpp start())
      {"group.id", s.group},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      {"enable.partition.eof", "true"},
      {"partition.assignment.strategy", "cooperative-sticky"},
      {"session.timeout.ms", "6000"},
      {"heartbeat.interval.ms", "1000"},
      {"queued.max.messages.kbytes", "16384"},
      {"fetch.wait.max.ms", "10"},
  };
  for (std::size_t at = 0; at < s.props.size();) {
    std::size_t end = s.props.find(',', at);
    if (end == std::string::npos) end = s.props.size();
    std::string kv = s.props.substr(at, end - at);
    if (auto eq = kv.find('='); eq != std::string::npos) v.push_back({kv.substr(0, eq), kv.substr(eq + 1)});
    at = end + 1;
  }
  return v;
}

// ------------------------------------------------------------------ checks
bool digits(std::string_view s, std::size_t from, std::size_t n) {
  if (s.size() < from + n) return false;
  for (std::size_t i = from; i < from + n; ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

// "<prefix>[0-9]+", the whole string (field_rules' patterns are whole-string matches).
bool prefixed_number(std::string_view s, std::string_view prefix) {
  return s.size() > prefix.size() && s.substr(0, prefix.size()) == prefix &&
         digits(s, prefix.size(), s.size() - prefix.size());
}

// RFC 3339: YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM).
bool rfc3339(std::string_view s) {
  if (!digits(s, 0, 4) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2) || s[7] != '-' || !digits(s, 8, 2) ||
      (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s, 11, 2) || s[13] != ':' || !digits(s, 14, 2) ||
      s[16] != ':' || !digits(s, 17, 2))
    return false;
  std::size_t i = 19;
  if (i < s.size() && s[i] == '.') {
    std::size_t start = ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start) return false;
  }
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) return i + 1 == s.size();
  return i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && digits(s, i + 1, 2) && s[i + 3] == ':' &&
         digits(s, i + 4, 2);
}

// COPY's text format: backslash escapes for the characters that separate fields/rows.
void append_escaped(std::string_view s, std::string& out) {
  for (char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out += c;
    }
  }
}

// One trade as a COPY line (id, version, counter_party, book_id, expired, matures_at,
// created_at, row), or false when it fails a check.
bool copy_line(od::parser& parser, const char* data, std::size_t len, std::size_t capacity, std::size_t row,
               std::string& out) {
  od::document doc;
  if (parser.iterate(data, len, capacity).get(doc)) return false;
  od::object obj;
  if (doc.get_object().get(obj)) return false;
  std::string_view id, counter_party, book, matures_at, created_at;
  std::int64_t version = -1;
  bool expired = false;
  unsigned seen = 0;
  for (auto field : obj) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return false;
    od::value v;
    if (field.value().get(v)) return false;
    od::json_type type;
    if (v.type().get(type)) return false;
    if (type == od::json_type::null) continue;  // null is missing
    unsigned bit = 0;
    simdjson::error_code e = simdjson::SUCCESS;
    if (key == "id") bit = 1, e = v.get_string().get(id);
    else if (key == "version") bit = 2, e = type == od::json_type::number ? v.get_int64().get(version) : simdjson::INCORRECT_TYPE;
    else if (key == "counter_party") bit = 4, e = v.get_string().get(counter_party);
    else if (key == "book") bit = 8, e = v.get_string().get(book);
    else if (key == "expired") bit = 16, e = v.get_bool().get(expired);
    else if (key == "matures_at") bit = 32, e = v.get_string().get(matures_at);
    else if (key == "created_at") bit = 64, e = v.get_string().get(created_at);
    if (e) return false;
    seen |= bit;
  }
  if (!doc.current_location().error()) return false;
  if (seen != 127 || version < 0 || !prefixed_number(id, "T") || !rfc3339(matures_at) || !rfc3339(created_at))
    return false;
  append_escaped(id, out);
  out += '\t';
  out += std::to_string(version);
  out += '\t';
  append_escaped(counter_party, out);
  out += '\t';
  append_escaped(book, out);
  out += expired ? "\tt\t" : "\tf\t";
  out += matures_at;
  out += '\t';
  out += created_at;
  out += '\t';
  out += std::to_string(row);
  out += '\n';
  return true;
}

// ------------------------------------------------------------------ one member
struct Worker {
  const Settings& s;
  rd_kafka_t* rk = nullptr;
  rd_kafka_queue_t* queue = nullptr;
  PGconn* pg = nullptr;
  std::string insert_sql, positions_sql_prefix;
  std::set<std::int32_t> assigned;
  bool ever_assigned = false;  // see bench::close_member
  std::map<std::int32_t, std::int64_t> acked;  // next offset stored with the rows
  od::parser parser;
  std::string padded;
  bench::Histogram latency;
  std::uint64_t records = 0, rejected = 0, skipped = 0;

  explicit Worker(const Settings& settings) : s(settings) {}

  PGresult* exec(const std::string& sql, ExecStatusType want) {
    PGresult* r = PQexec(pg, sql.c_str());
    if (PQresultStatus(r) != want) die("postgres: " + sql.substr(0, 60) + ": " + PQerrorMessage(pg));
    return r;
  }
  void run_sql(const std::string& sql) { PQclear(exec(sql, PGRES_COMMAND_OK)); }
  std::string literal(const std::string& v) {
    char* q = PQescapeLiteral(pg, v.data(), v.size());
    std::string out(q);
    PQfreemem(q);
    return out;
  }
  std::string ident(const std::string& v) {
    char* q = PQescapeIdentifier(pg, v.data(), v.size());
    std::string out(q);
    PQfreemem(q);
    return out;
  }

  // Stored positions of the given partitions (FOR UPDATE inside a transaction).
  std::map<std::int32_t, std::int64_t> stored_positions(const std::vector<std::int32_t>& parts, bool lock) {
    std::map<std::int32_t, std::int64_t> out;
    if (parts.empty()) return out;
    std::string in;
    for (auto p : parts) in += (in.empty() ? "" : ", ") + std::to_string(p);
    PGresult* r = exec("SELECT partition, next_offset FROM " + ident(s.positions_table) + " WHERE pipeline = " +
                           literal(s.pipeline) + " AND topic = " + literal(s.topic) + " AND partition IN (" + in +
                           ")" + (lock ? " FOR UPDATE" : ""),
                       PGRES_TUPLES_OK);
    for (int i = 0; i < PQntuples(r); ++i)
      out[std::atoi(PQgetvalue(r, i, 0))] = std::atoll(PQgetvalue(r, i, 1));
    PQclear(r);
    return out;
  }

  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                           void* opaque) {
    auto* w = static_cast<Worker*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      std::vector<std::int32_t> ps;
      for (int i = 0; i < parts->cnt; ++i) ps.push_back(parts->elems[i].partition);
      w->ever_assigned = true;
      auto stored = w->stored_positions(ps, false);
      for (int i = 0; i < parts->cnt; ++i) {
        auto& p = parts->elems[i];
        w->assigned.insert(p.partition);
        if (auto it = stored.find(p.partition); it != stored.end()) p.offset = it->second;  // exactly once
      }
      rd_kafka_incremental_assign(rk, parts);
    } else {
      w->commit(parts, false);
      for (int i = 0; i < parts->cnt; ++i) {
        w->assigned.erase(parts->elems[i].partition);
        w->acked.erase(parts->elems[i].partition);
      }
      rd_kafka_incremental_unassign(rk, parts);
    }
  }

  void commit(const rd_kafka_topic_partition_list_t* only, bool async) {
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(4);
    for (auto [p, off] : acked) {
      bool wanted = !only;
      for (int i = 0; only && i < only->cnt; ++i) wanted = wanted || only->elems[i].partition == p;
      if (wanted) rd_kafka_topic_partition_list_add(list, s.topic.c_str(), p)->offset = off;
    }
    if (list->cnt) {
      rd_kafka_resp_err_t rc = rd_kafka_commit(rk, list, async ? 1 : 0);
      if (rc && !async) std::fprintf(stderr, "trades_baseline: offset commit: %s\n", rd_kafka_err2str(rc));
    }
    rd_kafka_topic_partition_list_destroy(list);
  }

  void start() {
    pg = PQconnectdb(s.pg.c_str());
    if (PQstatus(pg) != CONNECTION_OK) die(std::string("postgres: ") + PQerrorMessage(pg));
    PQclear(exec("SELECT pg_advisory_lock(hashtext('trades_baseline schema'))", PGRES_TUPLES_OK));  // members start together
    run_sql("CREATE TABLE IF NOT EXISTS " + ident(s.positions_table) +
            " (pipeline text, topic text, partition integer, next_offset bigint NOT NULL, "
            "PRIMARY KEY (pipeline, topic, partition))");
    PQclear(exec("SELECT pg_advisory_unlock(hashtext('trades_baseline schema'))", PGRES_TUPLES_OK));
    const std::string cols = "id, version, counter_party, book_id, expired, matures_at, created_at";
    run_sql("CREATE TEMP TABLE load ON COMMIT DELETE ROWS AS SELECT " + cols + ", 0::bigint AS load_row FROM " +
            ident(s.table) + " WITH NO DATA");
    insert_sql = "INSERT INTO " + ident(s.table) + " (" + cols + ") SELECT DISTINCT ON (id, version) " + cols +
                 " FROM load ORDER BY id, version, load_row ON CONFLICT DO NOTHING";
    positions_sql_prefix = "INSERT INTO " + ident(s.positions_table) + " (pipeline, topic, partition, next_offset) VALUES ";

    auto cs = consumer_settings(s);
    cs.push_back({"bootstrap.servers", s.brokers});
    rd_kafka_conf_t* conf = bench::make_conf(cs);
    rd_kafka_conf_set_opaque(conf, this);
    rd_kafka_conf_set_rebalance_cb(conf, &Worker::on_rebalance);
    char err[512];
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) die(std::string("consumer: ") + err);
    rd_kafka_poll_set_consumer(rk);
    queue = rd_kafka_queue_get_consumer(rk);
    rd_kafka_topic_partition_list_t* sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, s.topic.c_str(), RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
  }

  void run() {
    std::vector<rd_kafka_message_t*> msgs(static_cast<std::size_t>(s.batch));
    std::vector<rd_kafka_message_t*> kept;
    std::map<std::int32_t, std::int64_t> next;  // partitions this batch moves
    while (!stopping) {
      rd_kafka_message_t* first = rd_kafka_consumer_poll(rk, 100);
      std::size_t n = 0;
      if (first) {
        msgs[0] = first;
        ssize_t more = rd_kafka_consume_batch_queue(queue, 0, msgs.data() + 1, msgs.size() - 1);
        n = 1 + static_cast<std::size_t>(more > 0 ? more : 0);
      }
      kept.clear();
      next.clear();
      for (std::size_t i = 0; i < n; ++i) {
        rd_kafka_message_t* m = msgs[i];
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          mark_end(m->partition, true);
        } else if (m->err) {
          std::fprintf(stderr, "consumer: %s\n", rd_kafka_message_errstr(m));
        } else if (assigned.count(m->partition)) {
          mark_end(m->partition, false);
          kept.push_back(m);
          auto [it, added] = next.try_emplace(m->partition, m->offset + 1);
          if (!added) it->second = std::max(it->second, m->offset + 1);
          continue;
        }
        rd_kafka_message_destroy(m);
      }
      if (!kept.empty()) write(kept, next);
      for (auto* m : kept) rd_kafka_message_destroy(m);
      if (s.stop_at_end && topic_read_to_end()) break;
    }
    commit(nullptr, false);
    bench::close_member(rk, queue, ever_assigned);
    PQfinish(pg);
  }

  // One transaction: positions locked and compared, rows copied and inserted, positions stored.
  void write(const std::vector<rd_kafka_message_t*>& batch, const std::map<std::int32_t, std::int64_t>& next) {
    run_sql("BEGIN");
    std::vector<std::int32_t> parts;
    for (auto& [p, off] : next) parts.push_back(p);
    auto stored = stored_positions(parts, true);
    std::string copy;
    copy.reserve(batch.size() * 128);
    std::size_t rows = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const rd_kafka_message_t* m = batch[i];
      if (auto it = stored.find(m->partition); it != stored.end() && m->offset < it->second) {
        ++skipped;  // written by an earlier transaction (a redelivery)
        continue;
      }
      const std::size_t before = copy.size();
      if (m->payload) {  // simdjson reads past the end: a padded copy, as json_decode makes
        padded.assign(static_cast<const char*>(m->payload), m->len);
        padded.reserve(m->len + simdjson::SIMDJSON_PADDING);
      }
      if (!m->payload || !copy_line(parser, padded.data(), m->len, padded.capacity(), i, copy)) {
        copy.resize(before);
        ++rejected;
        continue;
      }
      ++rows;
    }
    if (rows) {
      PQclear(exec("COPY load (id, version, counter_party, book_id, expired, matures_at, created_at, load_row) FROM STDIN",
                   PGRES_COPY_IN));
      if (PQputCopyData(pg, copy.data(), static_cast<int>(copy.size())) != 1 || PQputCopyEnd(pg, nullptr) != 1)
        die(std::string("postgres: COPY: ") + PQerrorMessage(pg));
      PGresult* r = PQgetResult(pg);
      if (PQresultStatus(r) != PGRES_COMMAND_OK) die(std::string("postgres: COPY: ") + PQerrorMessage(pg));
      PQclear(r);
      while ((r = PQgetResult(pg))) PQclear(r);
      run_sql(insert_sql);
    }
    std::string values;
    for (auto& [p, off] : next) {
      if (auto it = stored.find(p); it != stored.end() && it->second >= off) continue;
      values += (values.empty() ? "(" : ", (") + literal(s.pipeline) + ", " + literal(s.topic) + ", " +
                std::to_string(p) + ", " + std::to_string(off) + ")";
    }
    if (!values.empty())
      run_sql(positions_sql_prefix + values +
              " ON CONFLICT (pipeline, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset");
    run_sql("COMMIT");
    const std::int64_t now = bench::now_ms();
    for (const auto* m : batch) latency.add(now - rd_kafka_message_timestamp(m, nullptr));
    records += batch.size();
    for (auto& [p, off] : next) acked[p] = std::max(acked[p], off);
    commit(nullptr, true);  // as the kafka source: after every acknowledged batch
  }
};

// Once every member has left the group, the stored positions are committed to it once more
// by a consumer outside it (an empty group takes a commit without a generation). A member's
// own commits can fail for good with librdkafka 2.0.2 (confluentinc/librdkafka#4059, see
// bench/README.md: its generation replaced while it read) and the group would never show
// the end; pipehost's source sends such commits again until the group has them.
void commit_stored_positions(const Settings& s) {
  PGconn* pg = PQconnectdb(s.pg.c_str());
  if (PQstatus(pg) != CONNECTION_OK) die(std::string("postgres: ") + PQerrorMessage(pg));
  const char* params[] = {s.pipeline.c_str(), s.topic.c_str()};
  std::string sql = "SELECT partition, next_offset FROM " + s.positions_table + " WHERE pipeline = $1 AND topic = $2";
  PGresult* r = PQexecParams(pg, sql.c_str(), 2, nullptr, params, nullptr, nullptr, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) die(std::string("postgres: ") + PQerrorMessage(pg));
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(4);
  for (int i = 0; i < PQntuples(r); ++i)
    rd_kafka_topic_partition_list_add(list, s.topic.c_str(), std::atoi(PQgetvalue(r, i, 0)))->offset =
        std::atoll(PQgetvalue(r, i, 1));
  PQclear(r);
  PQfinish(pg);
  if (list->cnt) {
    rd_kafka_conf_t* conf = bench::make_conf({{"bootstrap.servers", s.brokers}, {"group.id", s.group},
                                              {"enable.auto.commit", "false"}});
    char err[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) die(std::string("consumer: ") + err);
    for (int attempt = 0; attempt < 50; ++attempt) {  // the group empties as the members' leaves land
      rd_kafka_resp_err_t rc = rd_kafka_commit(rk, list, 0);
      if (!rc) break;
      if (attempt == 49) std::fprintf(stderr, "trades_baseline: final offset commit: %s\n", rd_kafka_err2str(rc));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    rd_kafka_destroy(rk);
  }
  rd_kafka_topic_partition_list_destroy(list);
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  Settings s;
  s.brokers = args.str("brokers", "127.0.0.1:19092");
  s.topic = args.str("topic");
  s.group = args.str("group");
  s.pg = args.str("pg");
  s.table = args.str("table", "trades");
  s.positions_table = args.str("positions-table", "baseline_offsets");
  s.pipeline = args.str("pipeline", "trades_baseline");
  s.batch = static_cast<int>(args.num("batch", 512));
  s.stop_at_end = args.num("stop-at-end", 1) != 0;
  s.props = args.str("props");
  int threads = static_cast<int>(args.num("threads", 3));
  if (s.topic.empty() || s.group.empty() || s.pg.empty()) {
    std::fprintf(stderr, "usage: trades_baseline --topic T --group G --pg CONNINFO ...\n");
    return 2;
  }
  {  // the topic's partitions, all "not read to the end" yet
    rd_kafka_conf_t* conf = bench::make_conf({{"bootstrap.servers", s.brokers}});
    char err[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, s.topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1)
      die("no metadata for " + s.topic);
    for (int i = 0; i < md->topics[0].partition_cnt; ++i) topic_at_end[md->topics[0].partitions[i].id] = false;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
  }
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  auto start = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < threads; ++i) workers.push_back(std::make_unique<Worker>(s));
  std::vector<std::thread> running;
  for (auto& w : workers)
    running.emplace_back([&w] {
      w->start();
      w->run();
    });
  for (auto& t : running) t.join();
  if (!stopping) commit_stored_positions(s);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  bench::Histogram all;
  std::uint64_t records = 0, rejected = 0;
  for (auto& w : workers) {
    all.merge(w->latency);
    records += w->records;
    rejected += w->rejected;
  }
  std::vector<std::pair<std::string, std::string>> settings;
  for (auto& [k, v] : consumer_settings(s))
    if (k != "group.id") settings.push_back({k, v});
  settings.push_back({"(threads, each a consumer and a libpq connection)", std::to_string(threads)});
  settings.push_back({"(batch)", std::to_string(s.batch)});
  settings.push_back({"(per batch)", "BEGIN; positions FOR UPDATE; COPY to a temp table; INSERT ... SELECT DISTINCT ON "
                                     "(id, version) ... ON CONFLICT DO NOTHING; positions upsert; COMMIT; async commit"});
  std::printf("{\"records\":%llu,\"rejected\":%llu,\"seconds\":%.3f,\"latency_ms\":%s,\"librdkafka\":\"%s\","
              "\"libpq\":%d,\"settings\":%s}\n",
              static_cast<unsigned long long>(records), static_cast<unsigned long long>(rejected), seconds,
              all.json().c_str(), rd_kafka_version_str(), PQlibVersion(),
              bench::settings_json(settings).c_str());
  return 0;
}
