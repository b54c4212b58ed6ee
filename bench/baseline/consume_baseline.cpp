// Contender (a) of the consume pipeline: N consumer-group members (threads), each with
// pipehost's kafka source settings, polling batches the way the source does (wait for
// one message, then take what is queued, up to the batch size); each batch is decoded
// with the protoc-generated class after stripping the Confluent framing, pre-aggregated
// per account in integer cents and applied with redis_sum's own Lua script (the same
// key layout, positions hash and compare-and-set: exactly once); offsets are committed
// (at most every commit-interval, async) only after Redis confirmed. On assignment a
// member resumes from the positions stored in Redis. Ends when every assigned partition
// is read to its end (--stop-at-end 1, default) or on SIGTERM/SIGINT.
//
// usage: consume_baseline --brokers B --topic T --group G [--redis-host H] [--redis-port P]
//          [--redis-db 0] [--threads 3] [--batch 512] [--positions-key K]
//          [--commit-interval-ms 1000] [--stop-at-end 1]
// Prints one JSON line: records, seconds, latency (CreateTime to Redis reply) percentiles,
// librdkafka version and settings.
#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "common.hpp"
#include "sum_script.hpp"  // plugins/redis: the very script redis_sum runs
#include "transactions.pb.h"

namespace {

std::atomic<bool> stopping{false};
void on_signal(int) { stopping = true; }

// The process ends when every partition of the topic has been read to its end by
// whichever member owns it. (Per member "my assignment is at its end" is racy: a member
// whose first cooperative assignment is empty, or whose partitions are read while one
// is being moved, would end early and leave a revoked partition to nobody.)
std::mutex end_mutex;
std::map<std::int32_t, bool> topic_at_end;  // every partition of the topic
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
  std::string brokers, topic, group, redis_host, positions_key, props;
  int redis_port = 6379, redis_db = 0, batch = 512, commit_interval_ms = 1000;
  bool stop_at_end = true;
};

struct Worker {
  const Settings& s;
  int index;
  std::vector<std::pair<std::string, std::string>> kafka_settings;
  rd_kafka_t* rk = nullptr;
  rd_kafka_queue_t* queue = nullptr;
  redisContext* redis = nullptr;
  std::string sha;
  std::map<std::int32_t, bool> assigned;          // partition -> read to its end
  std::map<std::int32_t, std::int64_t> positions;  // cached stored next offset (-1: none)
  std::map<std::int32_t, std::int64_t> acked;      // next offset confirmed by Redis
  bool assignment_seen = false;
  bench::Histogram latency;
  std::uint64_t records = 0;

  explicit Worker(const Settings& settings, int i) : s(settings), index(i) {}

  std::string field(std::int32_t p) const { return s.topic + ":" + std::to_string(p); }

  redisReply* command(const std::vector<std::string>& argv) {
    std::vector<const char*> a;
    std::vector<size_t> l;
    for (const auto& x : argv) {
      a.push_back(x.data());
      l.push_back(x.size());
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(redis, static_cast<int>(a.size()), a.data(), l.data()));
    if (!r) {
      std::fprintf(stderr, "redis: %s\n", redis->errstr);
      std::exit(1);
    }
    if (r->type == REDIS_REPLY_ERROR) {
      std::fprintf(stderr, "redis %s: %s\n", argv[0].c_str(), r->str);
      std::exit(1);
    }
    return r;
  }

  std::int64_t load_position(std::int32_t p) {
    redisReply* r = command({"HGET", s.positions_key, field(p)});
    std::int64_t v = r->type == REDIS_REPLY_STRING ? std::atoll(r->str) : -1;
    freeReplyObject(r);
    return positions[p] = v;
  }

  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* parts, void* opaque) {
    auto* w = static_cast<Worker*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      w->assignment_seen = true;
      for (int i = 0; i < parts->cnt; ++i) {
        auto& p = parts->elems[i];
        w->assigned[p.partition] = false;
        std::int64_t stored = w->load_position(p.partition);
        if (stored >= 0) p.offset = stored;  // exactly once: resume where Redis is
      }
      rd_kafka_incremental_assign(rk, parts);
    } else {
      w->commit(parts, false);
      for (int i = 0; i < parts->cnt; ++i) {
        w->assigned.erase(parts->elems[i].partition);
        w->positions.erase(parts->elems[i].partition);
        w->acked.erase(parts->elems[i].partition);
      }
      rd_kafka_incremental_unassign(rk, parts);
    }
  }

  void commit(rd_kafka_topic_partition_list_t* only, bool async) {
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(4);
    for (auto [p, off] : acked) {
      bool wanted = !only;
      for (int i = 0; only && i < only->cnt; ++i) wanted = wanted || only->elems[i].partition == p;
      if (wanted) rd_kafka_topic_partition_list_add(list, s.topic.c_str(), p)->offset = off;
    }
    if (list->cnt) rd_kafka_commit(rk, list, async ? 1 : 0);
    rd_kafka_topic_partition_list_destroy(list);
  }

  void start() {
    kafka_settings = {
        {"group.id", s.group},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"enable.partition.eof", "true"},
        {"partition.assignment.strategy", "cooperative-sticky"},
        {"session.timeout.ms", "6000"},
        {"heartbeat.interval.ms", "1000"},
        {"queued.max.messages.kbytes", "4096"},
        {"queued.min.messages", "10000"},
        {"fetch.wait.max.ms", "10"},
        {"bootstrap.servers", s.brokers},
    };
    // --props "k=v,k=v": extra librdkafka settings, for experiments (printed with the rest).
    for (std::size_t at = 0; at < s.props.size();) {
      std::size_t end = s.props.find(',', at);
      if (end == std::string::npos) end = s.props.size();
      std::string kv = s.props.substr(at, end - at);
      if (auto eq = kv.find('='); eq != std::string::npos)
        kafka_settings.insert(kafka_settings.end() - 1, {kv.substr(0, eq), kv.substr(eq + 1)});
      at = end + 1;
    }
    redis = redisConnect(s.redis_host.c_str(), s.redis_port);
    if (!redis || redis->err) {
      std::fprintf(stderr, "cannot connect to redis\n");
      std::exit(1);
    }
    if (s.redis_db) freeReplyObject(command({"SELECT", std::to_string(s.redis_db)}));
    redisReply* r = command({"SCRIPT", "LOAD", pipehost::redis::kSumScript});
    sha.assign(r->str, r->len);
    freeReplyObject(r);

    rd_kafka_conf_t* conf = bench::make_conf(kafka_settings);
    rd_kafka_conf_set_opaque(conf, this);
    rd_kafka_conf_set_rebalance_cb(conf, &Worker::on_rebalance);
    char err[512];
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
      std::fprintf(stderr, "rd_kafka_new: %s\n", err);
      std::exit(1);
    }
    rd_kafka_poll_set_consumer(rk);
    queue = rd_kafka_queue_get_consumer(rk);
    rd_kafka_topic_partition_list_t* sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, s.topic.c_str(), RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
  }

  bool caught_up() const { return topic_read_to_end(); }


  void run() {
    std::vector<rd_kafka_message_t*> msgs(static_cast<std::size_t>(s.batch));
    Transaction t;
    std::unordered_map<std::string, std::int64_t> sums;
    std::vector<std::int64_t> timestamps;
    std::map<std::int32_t, std::int64_t> next;  // partitions this batch moves
    std::vector<std::string> cmd;
    auto last_commit = std::chrono::steady_clock::now();
    while (!stopping) {
      rd_kafka_message_t* first = rd_kafka_consumer_poll(rk, 100);
      std::size_t n = 0;
      if (first) {
        msgs[0] = first;
        ssize_t more = rd_kafka_consume_batch_queue(queue, 0, msgs.data() + 1, msgs.size() - 1);
        n = 1 + static_cast<std::size_t>(more > 0 ? more : 0);
      }
      sums.clear();
      timestamps.clear();
      next.clear();
      for (std::size_t i = 0; i < n; ++i) {
        rd_kafka_message_t* m = msgs[i];
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          if (auto it = assigned.find(m->partition); it != assigned.end()) it->second = true;
          mark_end(m->partition, true);
        } else if (m->err) {
          std::fprintf(stderr, "consumer: %s\n", rd_kafka_message_errstr(m));
        } else {
          if (auto it = assigned.find(m->partition); it != assigned.end()) it->second = false;
          mark_end(m->partition, false);
          auto pos = positions.find(m->partition);
          std::int64_t stored = pos != positions.end() ? pos->second : load_position(m->partition);
          if (m->offset >= stored) {  // below: already applied (a redelivery)
            auto* p = static_cast<const unsigned char*>(m->payload);
            std::size_t len = m->len;
            if (!bench::strip_framing(p, len) || !t.ParseFromArray(p, static_cast<int>(len))) {
              std::fprintf(stderr, "undecodable record at %d/%lld\n", m->partition, static_cast<long long>(m->offset));
              std::exit(1);
            }
            sums[t.account_number()] += std::llround(t.amount() * 100.0);
            timestamps.push_back(rd_kafka_message_timestamp(m, nullptr));
            auto [it, added] = next.try_emplace(m->partition, m->offset + 1);
            if (!added) it->second = std::max(it->second, m->offset + 1);
          }
        }
        rd_kafka_message_destroy(m);
      }
      if (!next.empty()) {
        cmd.clear();
        cmd.push_back("EVALSHA");
        cmd.push_back(sha);
        cmd.push_back(std::to_string(1 + sums.size()));
        cmd.push_back(s.positions_key);
        for (auto& [k, v] : sums) cmd.push_back(k);
        cmd.push_back("string");
        cmd.push_back("2");
        cmd.push_back(std::to_string(next.size()));
        for (auto& [p, off] : next) {
          cmd.push_back(field(p));
          std::int64_t stored = positions[p];
          cmd.push_back(stored >= 0 ? std::to_string(stored) : "none");
          cmd.push_back(std::to_string(off));
        }
        for (auto& [k, v] : sums) cmd.push_back(std::to_string(v));
        redisReply* r = command(cmd);
        bool ok = r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
                  std::string_view(r->element[0]->str, r->element[0]->len) == "ok";
        freeReplyObject(r);
        if (!ok) {  // another member wrote the partition: not expected without rebalances
          std::fprintf(stderr, "redis_sum script conflict; exiting\n");
          std::exit(1);
        }
        std::int64_t now = bench::now_ms();
        for (auto ts : timestamps) latency.add(now - ts);
        records += timestamps.size();
        for (auto& [p, off] : next) positions[p] = acked[p] = off;
      }
      if (std::chrono::steady_clock::now() - last_commit >= std::chrono::milliseconds(s.commit_interval_ms)) {
        commit(nullptr, true);
        last_commit = std::chrono::steady_clock::now();
      }
      if (s.stop_at_end && caught_up()) break;
    }
    commit(nullptr, false);
    bench::close_member(rk, queue, assignment_seen);
    redisFree(redis);
  }
};

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  Settings s;
  s.brokers = args.str("brokers", "127.0.0.1:19092");
  s.topic = args.str("topic");
  s.group = args.str("group");
  s.redis_host = args.str("redis-host", "127.0.0.1");
  s.redis_port = static_cast<int>(args.num("redis-port", 16379));
  s.redis_db = static_cast<int>(args.num("redis-db", 0));
  s.batch = static_cast<int>(args.num("batch", 512));
  s.commit_interval_ms = static_cast<int>(args.num("commit-interval-ms", 1000));
  s.stop_at_end = args.num("stop-at-end", 1) != 0;
  s.props = args.str("props");
  s.positions_key = args.str("positions-key", "pipehost:positions:consume");
  int threads = static_cast<int>(args.num("threads", 3));
  if (s.topic.empty() || s.group.empty()) {
    std::fprintf(stderr, "usage: consume_baseline --topic T --group G ...\n");
    return 2;
  }
  {  // the topic's partitions, all "not read to the end" yet
    rd_kafka_conf_t* conf = bench::make_conf({{"bootstrap.servers", s.brokers}});
    char err[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, s.topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1) {
      std::fprintf(stderr, "no metadata for %s\n", s.topic.c_str());
      return 1;
    }
    for (int i = 0; i < md->topics[0].partition_cnt; ++i) topic_at_end[md->topics[0].partitions[i].id] = false;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
  }
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  auto start = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < threads; ++i) workers.push_back(std::make_unique<Worker>(s, i));
  std::vector<std::thread> running;
  for (auto& w : workers)
    running.emplace_back([&w] {
      w->start();
      w->run();
    });
  for (auto& t : running) t.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  bench::Histogram all;
  std::uint64_t records = 0;
  for (auto& w : workers) {
    all.merge(w->latency);
    records += w->records;
  }
  auto settings = workers[0]->kafka_settings;
  settings.pop_back();  // bootstrap.servers
  settings.push_back({"(threads)", std::to_string(threads)});
  settings.push_back({"(batch)", std::to_string(s.batch)});
  settings.push_back({"(commit.interval.ms)", std::to_string(s.commit_interval_ms)});
  std::printf("{\"records\":%llu,\"seconds\":%.3f,\"latency_ms\":%s,\"librdkafka\":\"%s\",\"settings\":%s}\n",
              static_cast<unsigned long long>(records), seconds, all.json().c_str(), rd_kafka_version_str(),
              bench::settings_json(settings).c_str());
  return 0;
}
