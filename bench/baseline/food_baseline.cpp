// Contender (a) of the food pipeline (seed 003): one consumer-group member with pipehost's
// kafka source settings, polling batches the way the source does (wait for one message,
// then take what is queued, up to the batch size). Each record is parsed with simdjson
// On-Demand and checked as the bench config's field_rules do (an object whose "food" is a
// string of 1 to 64 characters, no line break; a failing record is counted and skipped:
// the bench input has none); the batch is counted per food and written in one SQLite
// transaction, as pipehost's sqlite sink does it: BEGIN IMMEDIATE, the stored positions of
// the batch's partitions read (records below them skipped), one upsert per food (count =
// coalesce(count, 0) + the batch's count), the new positions upserted into the positions
// table of the same file, COMMIT; then the offsets are committed to the group
// (asynchronously). The file is opened in WAL mode with SQLite's default synchronous
// setting, as the sink opens it. On assignment the member resumes from the stored
// positions: exactly once. Ends when every partition of the topic has been read to its
// end (--stop-at-end 1, default), or on SIGTERM/SIGINT.
//
// usage: food_baseline --brokers B --topic T --group G --db FILE [--table aggregated]
//          [--positions-table baseline_offsets] [--pipeline food_baseline] [--batch 512]
//          [--props k=v,...] [--stop-at-end 1]
// Prints one JSON line: records, rejected, seconds, latency (CreateTime to COMMIT)
// percentiles, librdkafka version and settings.
#include <librdkafka/rdkafka.h>
#include <simdjson.h>
#include <sqlite3.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <optional>
#include <set>
#include <unordered_map>

#include "common.hpp"

namespace {

namespace od = simdjson::ondemand;

std::atomic<bool> stopping{false};
void on_signal(int) { stopping = true; }

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "food_baseline: %s\n", what.c_str());
  std::exit(1);
}

struct Settings {
  std::string brokers, topic, group, db, table, positions_table, pipeline, props;
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

// A food name: 1 to 64 characters (UTF-8 code points), no line terminator (".{1,64}").
bool food_name(std::string_view s) {
  std::size_t chars = 0;
  for (unsigned char c : s) {
    if (c == '\n' || c == '\r') return false;
    if ((c & 0xC0) != 0x80) ++chars;
  }
  return chars >= 1 && chars <= 64;
}

struct Statement {
  sqlite3_stmt* s = nullptr;
  ~Statement() { sqlite3_finalize(s); }
};

struct Consumer {
  const Settings& s;
  rd_kafka_t* rk = nullptr;
  rd_kafka_queue_t* queue = nullptr;
  sqlite3* db = nullptr;
  Statement upsert, read_position, store_position;
  std::map<std::int32_t, bool> at_end;  // every partition of the topic
  std::set<std::int32_t> assigned;
  bool ever_assigned = false;  // see bench::close_member
  std::map<std::int32_t, std::int64_t> acked;
  od::parser parser;
  std::string padded;
  bench::Histogram latency;
  std::uint64_t records = 0, rejected = 0, skipped = 0;

  explicit Consumer(const Settings& settings) : s(settings) {}

  void exec(const std::string& sql) {
    char* message = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      std::string why = message ? message : sqlite3_errmsg(db);
      sqlite3_free(message);
      die("sqlite: " + why + " (in: " + sql.substr(0, 80) + ")");
    }
  }
  void prepare(Statement& st, const std::string& sql) {
    if (sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &st.s, nullptr) != SQLITE_OK)
      die(std::string("sqlite: ") + sqlite3_errmsg(db) + " (preparing " + sql + ")");
  }
  static std::string ident(const std::string& name) {
    std::string out = "\"";
    for (char c : name) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
  }

  std::optional<std::int64_t> stored(std::int32_t partition) {
    sqlite3_stmt* st = read_position.s;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, s.pipeline.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s.topic.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, partition);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) return sqlite3_column_int64(st, 0);
    if (rc != SQLITE_DONE) die(std::string("sqlite: reading a position: ") + sqlite3_errmsg(db));
    return std::nullopt;
  }

  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                           void* opaque) {
    auto* c = static_cast<Consumer*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      c->ever_assigned = true;
      for (int i = 0; i < parts->cnt; ++i) {
        auto& p = parts->elems[i];
        c->assigned.insert(p.partition);
        if (auto pos = c->stored(p.partition)) p.offset = *pos;  // exactly once
      }
      rd_kafka_incremental_assign(rk, parts);
    } else {
      c->commit(false);
      for (int i = 0; i < parts->cnt; ++i) {
        c->assigned.erase(parts->elems[i].partition);
        c->acked.erase(parts->elems[i].partition);
      }
      rd_kafka_incremental_unassign(rk, parts);
    }
  }

  void commit(bool async) {
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(4);
    for (auto [p, off] : acked) rd_kafka_topic_partition_list_add(list, s.topic.c_str(), p)->offset = off;
    if (list->cnt) rd_kafka_commit(rk, list, async ? 1 : 0);
    rd_kafka_topic_partition_list_destroy(list);
  }

  void start() {
    if (sqlite3_open_v2(s.db.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK)
      die("sqlite: cannot open " + s.db);
    sqlite3_busy_timeout(db, 5000);
    exec("PRAGMA journal_mode = WAL");
    exec("CREATE TABLE IF NOT EXISTS " + ident(s.positions_table) +
         " (pipeline TEXT, topic TEXT, partition INTEGER, next_offset INTEGER NOT NULL, "
         "PRIMARY KEY (pipeline, topic, partition))");
    prepare(upsert, "INSERT INTO " + ident(s.table) +
                        " (\"food\", \"count\") VALUES (?, ?) ON CONFLICT (\"food\") DO UPDATE SET "
                        "\"count\" = coalesce(\"count\", 0) + excluded.\"count\"");
    prepare(read_position, "SELECT next_offset FROM " + ident(s.positions_table) +
                               " WHERE pipeline = ? AND topic = ? AND partition = ?");
    prepare(store_position, "INSERT INTO " + ident(s.positions_table) +
                                " (pipeline, topic, partition, next_offset) VALUES (?, ?, ?, ?) ON CONFLICT "
                                "(pipeline, topic, partition) DO UPDATE SET next_offset = excluded.next_offset");

    auto cs = consumer_settings(s);
    cs.push_back({"bootstrap.servers", s.brokers});
    rd_kafka_conf_t* conf = bench::make_conf(cs);
    rd_kafka_conf_set_opaque(conf, this);
    rd_kafka_conf_set_rebalance_cb(conf, &Consumer::on_rebalance);
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

  bool read_to_end() const {
    for (auto& [p, e] : at_end)
      if (!e) return false;
    return !at_end.empty();
  }

  // The food of one record, or false when it fails a check.
  bool food_of(const rd_kafka_message_t* m, std::string_view& food) {
    if (!m->payload) return false;
    padded.assign(static_cast<const char*>(m->payload), m->len);  // padded, as json_decode reads it
    padded.reserve(m->len + simdjson::SIMDJSON_PADDING);
    od::document doc;
    if (parser.iterate(padded.data(), m->len, padded.capacity()).get(doc)) return false;
    od::object obj;
    if (doc.get_object().get(obj)) return false;
    bool found = false;
    for (auto field : obj) {
      std::string_view key;
      if (field.unescaped_key().get(key)) return false;
      od::value v;
      if (field.value().get(v)) return false;
      if (key == "food") {
        if (found || v.get_string().get(food)) return false;
        found = true;
      }  // another key: skipped unparsed by the next step
    }
    return found && doc.current_location().error() && food_name(food);
  }

  void run() {
    std::vector<rd_kafka_message_t*> msgs(static_cast<std::size_t>(s.batch));
    std::unordered_map<std::string, std::int64_t> counts;
    std::vector<std::int64_t> timestamps;
    std::map<std::int32_t, std::pair<std::int64_t, std::int64_t>> spans;  // partition -> first, next
    while (!stopping) {
      rd_kafka_message_t* first = rd_kafka_consumer_poll(rk, 100);
      std::size_t n = 0;
      if (first) {
        msgs[0] = first;
        ssize_t more = rd_kafka_consume_batch_queue(queue, 0, msgs.data() + 1, msgs.size() - 1);
        n = 1 + static_cast<std::size_t>(more > 0 ? more : 0);
      }
      counts.clear();
      timestamps.clear();
      spans.clear();
      if (n) {
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
          die(std::string("sqlite: BEGIN: ") + sqlite3_errmsg(db));
      }
      std::map<std::int32_t, std::optional<std::int64_t>> positions;
      for (std::size_t i = 0; i < n; ++i) {
        rd_kafka_message_t* m = msgs[i];
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          at_end[m->partition] = true;
        } else if (m->err) {
          std::fprintf(stderr, "consumer: %s\n", rd_kafka_message_errstr(m));
        } else if (assigned.count(m->partition)) {
          at_end[m->partition] = false;
          auto pos = positions.find(m->partition);
          if (pos == positions.end()) pos = positions.emplace(m->partition, stored(m->partition)).first;
          timestamps.push_back(rd_kafka_message_timestamp(m, nullptr));
          auto [span, added] = spans.try_emplace(m->partition, m->offset, m->offset + 1);
          if (!added) span->second.second = std::max(span->second.second, m->offset + 1);
          std::string_view food;
          if (pos->second && m->offset < *pos->second) ++skipped;  // an earlier transaction wrote it
          else if (food_of(m, food)) ++counts[std::string(food)];
          else ++rejected;
        }
        rd_kafka_message_destroy(m);
      }
      if (n) {
        for (auto& [food, count] : counts) {
          sqlite3_reset(upsert.s);
          sqlite3_bind_text(upsert.s, 1, food.data(), static_cast<int>(food.size()), SQLITE_STATIC);
          sqlite3_bind_int64(upsert.s, 2, count);
          if (sqlite3_step(upsert.s) != SQLITE_DONE) die(std::string("sqlite: upsert: ") + sqlite3_errmsg(db));
        }
        for (auto& [p, span] : spans) {
          if (auto pos = positions[p]; pos && *pos >= span.second) continue;
          sqlite3_reset(store_position.s);
          sqlite3_bind_text(store_position.s, 1, s.pipeline.c_str(), -1, SQLITE_STATIC);
          sqlite3_bind_text(store_position.s, 2, s.topic.c_str(), -1, SQLITE_STATIC);
          sqlite3_bind_int(store_position.s, 3, p);
          sqlite3_bind_int64(store_position.s, 4, span.second);
          if (sqlite3_step(store_position.s) != SQLITE_DONE)
            die(std::string("sqlite: storing a position: ") + sqlite3_errmsg(db));
        }
        if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
          die(std::string("sqlite: COMMIT: ") + sqlite3_errmsg(db));
        const std::int64_t now = bench::now_ms();
        for (auto ts : timestamps) latency.add(now - ts);
        records += timestamps.size();
        if (!spans.empty()) {
          for (auto& [p, span] : spans) acked[p] = std::max(acked[p], span.second);
          commit(true);  // as the kafka source: after every acknowledged batch
        }
      }
      if (s.stop_at_end && read_to_end()) break;
    }
    commit(false);
    bench::close_member(rk, queue, ever_assigned);
  }
};

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  Settings s;
  s.brokers = args.str("brokers", "127.0.0.1:19092");
  s.topic = args.str("topic");
  s.group = args.str("group");
  s.db = args.str("db");
  s.table = args.str("table", "aggregated");
  s.positions_table = args.str("positions-table", "baseline_offsets");
  s.pipeline = args.str("pipeline", "food_baseline");
  s.batch = static_cast<int>(args.num("batch", 512));
  s.stop_at_end = args.num("stop-at-end", 1) != 0;
  s.props = args.str("props");
  if (s.topic.empty() || s.group.empty() || s.db.empty()) {
    std::fprintf(stderr, "usage: food_baseline --topic T --group G --db FILE ...\n");
    return 2;
  }
  Consumer c(s);
  {  // the topic's partitions, all "not read to the end" yet
    rd_kafka_conf_t* conf = bench::make_conf({{"bootstrap.servers", s.brokers}});
    char err[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, s.topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1)
      die("no metadata for " + s.topic);
    for (int i = 0; i < md->topics[0].partition_cnt; ++i) c.at_end[md->topics[0].partitions[i].id] = false;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
  }
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  auto start = std::chrono::steady_clock::now();
  c.start();
  c.run();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<std::pair<std::string, std::string>> settings;
  for (auto& [k, v] : consumer_settings(s))
    if (k != "group.id") settings.push_back({k, v});
  settings.push_back({"(batch)", std::to_string(s.batch)});
  settings.push_back({"(per batch)", "BEGIN IMMEDIATE; positions read; one upsert per food; positions upsert; COMMIT "
                                     "(WAL, default synchronous); async commit"});
  std::printf("{\"records\":%llu,\"rejected\":%llu,\"seconds\":%.3f,\"latency_ms\":%s,\"librdkafka\":\"%s\","
              "\"sqlite\":\"%s\",\"settings\":%s}\n",
              static_cast<unsigned long long>(c.records), static_cast<unsigned long long>(c.rejected), seconds,
              c.latency.json().c_str(), rd_kafka_version_str(), sqlite3_libversion(),
              bench::settings_json(settings).c_str());
  sqlite3_close_v2(c.db);  // closes once the statements are finalized
  return 0;
}
