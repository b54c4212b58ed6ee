// Contender (a) of the route pipeline (seed 004's multi-tenant processor): N consumer-group
// members (threads), each with pipehost's kafka source settings and its own producer with
// the kafka sink's settings (as pipehost runs one source and one sink per task). A member
// polls batches the way the source does (wait for one message, then take what is queued,
// up to the batch size); each record's Confluent frame gives the writer schema id, whose
// schema is fetched once from the registry over HTTP (libcurl, GET /schemas/ids/<id>) and
// cached; the value is read with Avro C's generic reader, routed by
// destination_service_type to <prefix>.processor.to.{finance,marketing,logistics},
// reshaped into processor-to-consumer.avsc (producer_service_id <- origin_service_id,
// processor_service_id constant, destination_type, producer_event_timestamp <-
// event_timestamp, processor_event_timestamp = now ms, payload), written with Avro C and
// framed with the output schema's id (registered by this program under
// <prefix>.processor.to.consumer-value, POST /subjects/<subject>/versions) and produced with
// the input's key and timestamp. At least once: a batch's offsets are committed
// (asynchronously) once every record of it and of the batches before it has its delivery
// report; on revocation the producer is flushed and the revoked partitions committed
// synchronously. An unknown destination or an undecodable record ends the program (no
// dead letters: the bench input has none). Ends when every partition of the topic has been
// read to its end by whichever member owns it and nothing is in flight (--stop-at-end 1,
// default), or on SIGTERM/SIGINT.
//
// usage: route_baseline --brokers B --registry URL --topic T --group G --prefix P
//          --out-schema FILE [--processor-id event-processor-1] [--threads 3] [--batch 512]
//          [--max-in-flight 16384] [--props k=v,...] [--stop-at-end 1]
// Prints one JSON line: records, seconds, latency (input CreateTime to delivery report)
// percentiles, librdkafka version and settings.
#include <avro.h>
#include <curl/curl.h>
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "common.hpp"

namespace {

std::atomic<bool> stopping{false};
void on_signal(int) { stopping = true; }

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "route_baseline: %s\n", what.c_str());
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

// ------------------------------------------------------------------ Schema Registry
std::size_t append_body(char* data, std::size_t size, std::size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

class Registry {
 public:
  explicit Registry(std::string url) : url_(std::move(url)), curl_(curl_easy_init()) {
    while (!url_.empty() && url_.back() == '/') url_.pop_back();
  }
  ~Registry() { curl_easy_cleanup(curl_); }
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  std::string schema_by_id(std::int32_t id) {
    auto [status, body] = request("/schemas/ids/" + std::to_string(id), nullptr);
    if (status != 200) die("registry: schema id " + std::to_string(id) + ": HTTP " + std::to_string(status) + " " + body);
    return nlohmann::json::parse(body).at("schema").get<std::string>();
  }

  std::int32_t register_schema(const std::string& subject, const std::string& schema) {
    std::string payload = nlohmann::json{{"schema", schema}}.dump();
    char* escaped = curl_easy_escape(curl_, subject.data(), static_cast<int>(subject.size()));
    std::string path = "/subjects/" + std::string(escaped) + "/versions";
    curl_free(escaped);
    auto [status, body] = request(path, &payload);
    if (status != 200) die("registry: registering " + subject + ": HTTP " + std::to_string(status) + " " + body);
    return nlohmann::json::parse(body).at("id").get<std::int32_t>();
  }

 private:
  std::pair<long, std::string> request(const std::string& path, const std::string* post) {
    curl_easy_reset(curl_);
    std::string url = url_ + path, response;
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/vnd.schemaregistry.v1+json");
    headers = curl_slist_append(headers, "Accept: application/vnd.schemaregistry.v1+json, application/json");
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &response);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    if (post) {
      curl_easy_setopt(curl_, CURLOPT_POST, 1L);
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, post->c_str());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(post->size()));
    }
    CURLcode rc = curl_easy_perform(curl_);
    curl_slist_free_all(headers);
    long status = 0;
    if (rc != CURLE_OK) return {0, curl_easy_strerror(rc)};
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
    return {status, response};
  }

  std::string url_;
  CURL* curl_;
};

// ------------------------------------------------------------------ Avro C helpers
avro_schema_t parse_schema(const std::string& text) {
  avro_schema_t schema = nullptr;
  if (avro_schema_from_json_length(text.data(), text.size(), &schema) != 0)
    die(std::string("Avro schema: ") + avro_strerror());
  return schema;
}

int field_index(avro_schema_t schema, const char* name) {
  int i = avro_schema_record_field_get_index(schema, name);
  if (i < 0) die(std::string("schema has no field ") + name);
  return i;
}

// A writer schema (by id): its generic class, one reusable value, the input fields' indexes.
struct WriterSchema {
  avro_schema_t schema = nullptr;
  avro_value_iface_t* iface = nullptr;
  avro_value_t value{};
  int origin = 0, destination = 0, timestamp = 0, payload = 0;

  explicit WriterSchema(const std::string& text) : schema(parse_schema(text)) {
    iface = avro_generic_class_from_schema(schema);
    if (!iface || avro_generic_value_new(iface, &value) != 0) die(std::string("Avro: ") + avro_strerror());
    origin = field_index(schema, "origin_service_id");
    destination = field_index(schema, "destination_service_type");
    timestamp = field_index(schema, "event_timestamp");
    payload = field_index(schema, "payload");
  }
  ~WriterSchema() {
    avro_value_decref(&value);
    avro_value_iface_decref(iface);
    avro_schema_decref(schema);
  }
  WriterSchema(const WriterSchema&) = delete;
  WriterSchema& operator=(const WriterSchema&) = delete;
};

struct Settings {
  std::string brokers, registry, topic, group, prefix, out_schema_text, processor_id, props;
  std::int32_t out_schema_id = -1;
  int batch = 512;
  std::size_t max_in_flight = 16384;
  bool stop_at_end = true;
};

const char* const kDestinations[] = {"FINANCE", "MARKETING", "LOGISTICS"};
const char* const kSuffixes[] = {"finance", "marketing", "logistics"};

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
  // --props "k=v,k=v": extra consumer settings, for experiments (printed with the rest).
  for (std::size_t at = 0; at < s.props.size();) {
    std::size_t end = s.props.find(',', at);
    if (end == std::string::npos) end = s.props.size();
    std::string kv = s.props.substr(at, end - at);
    if (auto eq = kv.find('='); eq != std::string::npos) v.push_back({kv.substr(0, eq), kv.substr(eq + 1)});
    at = end + 1;
  }
  return v;
}

std::vector<std::pair<std::string, std::string>> producer_settings() {
  return {
      // pipehost's kafka sink defaults (plugins/kafka/kafka_sink.cpp start())
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"linger.ms", "5"},
      {"batch.num.messages", "10000"},
      {"queue.buffering.max.kbytes", "16384"},
      {"queue.buffering.max.messages", "100000"},
  };
}

// The records of one polled batch: settled when every one has its delivery report.
struct Batch {
  std::size_t remaining = 0;
  std::map<std::int32_t, std::int64_t> next;  // partition -> next offset to read
};

struct Worker {
  const Settings& s;
  rd_kafka_t* consumer = nullptr;
  rd_kafka_queue_t* queue = nullptr;
  rd_kafka_t* producer = nullptr;
  rd_kafka_topic_t* outputs[3] = {};
  Registry registry;
  std::unordered_map<std::int32_t, std::unique_ptr<WriterSchema>> writers;
  avro_reader_t reader = nullptr;
  avro_writer_t writer = nullptr;
  avro_schema_t out_schema = nullptr;
  avro_value_iface_t* out_iface = nullptr;
  avro_value_t out{};
  int out_producer_id = 0, out_destination = 0, out_producer_ts = 0, out_processor_ts = 0, out_payload = 0;
  std::vector<char> buffer = std::vector<char>(1 << 16);
  std::deque<std::unique_ptr<Batch>> batches;  // in poll order
  std::size_t in_flight = 0;
  std::set<std::int32_t> assigned;
  bool ever_assigned = false;  // see bench::close_member
  std::map<std::int32_t, std::int64_t> acked;  // next offset whose records are all delivered
  std::map<std::int32_t, std::int64_t> to_commit;
  bench::Histogram latency;
  std::uint64_t records = 0;

  explicit Worker(const Settings& settings) : s(settings), registry(settings.registry) {}

  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* w = static_cast<Worker*>(opaque);
    if (m->err) die(std::string("delivery failed: ") + rd_kafka_err2str(m->err));
    auto* b = static_cast<Batch*>(m->_private);
    --b->remaining;
    --w->in_flight;
    ++w->records;
    w->latency.add(bench::now_ms() - rd_kafka_message_timestamp(m, nullptr));
  }

  // Settled batches at the front give their offsets to the next commit.
  void settle() {
    while (!batches.empty() && batches.front()->remaining == 0) {
      for (auto [p, off] : batches.front()->next)
        if (assigned.count(p)) {  // a revoked partition belongs to another member now
          acked[p] = std::max(acked[p], off);
          to_commit[p] = acked[p];
        }
      batches.pop_front();
    }
  }

  void commit(bool async, const rd_kafka_topic_partition_list_t* only = nullptr) {
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(4);
    for (auto it = to_commit.begin(); it != to_commit.end();) {
      bool wanted = !only;
      for (int i = 0; only && i < only->cnt; ++i) wanted = wanted || only->elems[i].partition == it->first;
      if (!wanted) {
        ++it;
        continue;
      }
      rd_kafka_topic_partition_list_add(list, s.topic.c_str(), it->first)->offset = it->second;
      it = to_commit.erase(it);
    }
    if (list->cnt) {
      rd_kafka_resp_err_t rc = rd_kafka_commit(consumer, list, async ? 1 : 0);
      if (rc && !async) std::fprintf(stderr, "commit: %s\n", rd_kafka_err2str(rc));
    }
    rd_kafka_topic_partition_list_destroy(list);
  }

  // Everything produced so far delivered, settled and committed (revocation, the end).
  void drain(const rd_kafka_topic_partition_list_t* only) {
    while (in_flight > 0) rd_kafka_flush(producer, 1000);
    settle();
    commit(false, only);
  }

  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                           void* opaque) {
    auto* w = static_cast<Worker*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      w->ever_assigned = true;
      for (int i = 0; i < parts->cnt; ++i) w->assigned.insert(parts->elems[i].partition);
      rd_kafka_incremental_assign(rk, parts);
    } else {
      w->drain(parts);
      for (int i = 0; i < parts->cnt; ++i) {
        w->assigned.erase(parts->elems[i].partition);
        w->acked.erase(parts->elems[i].partition);
      }
      rd_kafka_incremental_unassign(rk, parts);
    }
  }

  void start() {
    reader = avro_reader_memory("", 0);
    writer = avro_writer_memory(buffer.data(), static_cast<int64_t>(buffer.size()));
    out_schema = parse_schema(s.out_schema_text);
    out_iface = avro_generic_class_from_schema(out_schema);
    if (!out_iface || avro_generic_value_new(out_iface, &out) != 0) die(std::string("Avro: ") + avro_strerror());
    out_producer_id = field_index(out_schema, "producer_service_id");
    out_destination = field_index(out_schema, "destination_type");
    out_producer_ts = field_index(out_schema, "producer_event_timestamp");
    out_processor_ts = field_index(out_schema, "processor_event_timestamp");
    out_payload = field_index(out_schema, "payload");
    avro_value_t f;
    avro_value_get_by_index(&out, static_cast<size_t>(field_index(out_schema, "processor_service_id")), &f, nullptr);
    avro_value_set_string_len(&f, s.processor_id.c_str(), s.processor_id.size() + 1);

    auto ps = producer_settings();
    ps.push_back({"bootstrap.servers", s.brokers});
    rd_kafka_conf_t* pconf = bench::make_conf(ps);
    rd_kafka_conf_set_opaque(pconf, this);
    rd_kafka_conf_set_dr_msg_cb(pconf, &Worker::on_delivery);
    char err[512];
    producer = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, err, sizeof err);
    if (!producer) die(std::string("producer: ") + err);
    for (int i = 0; i < 3; ++i)
      outputs[i] = rd_kafka_topic_new(producer, (s.prefix + ".processor.to." + kSuffixes[i]).c_str(), nullptr);

    auto cs = consumer_settings(s);
    cs.push_back({"bootstrap.servers", s.brokers});
    rd_kafka_conf_t* cconf = bench::make_conf(cs);
    rd_kafka_conf_set_opaque(cconf, this);
    rd_kafka_conf_set_rebalance_cb(cconf, &Worker::on_rebalance);
    consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, err, sizeof err);
    if (!consumer) die(std::string("consumer: ") + err);
    rd_kafka_poll_set_consumer(consumer);
    queue = rd_kafka_queue_get_consumer(consumer);
    rd_kafka_topic_partition_list_t* sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, s.topic.c_str(), RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(consumer, sub);
    rd_kafka_topic_partition_list_destroy(sub);
  }

  WriterSchema& writer_schema(std::int32_t id) {
    auto it = writers.find(id);
    if (it == writers.end()) it = writers.emplace(id, std::make_unique<WriterSchema>(registry.schema_by_id(id))).first;
    return *it->second;
  }

  // Decode, route, reshape, encode and produce one record.
  void route(const rd_kafka_message_t* m, Batch* batch) {
    auto* p = static_cast<const unsigned char*>(m->payload);
    if (m->len < 5 || p[0] != 0) die("record without the Confluent frame at offset " + std::to_string(m->offset));
    std::int32_t id = static_cast<std::int32_t>((std::uint32_t{p[1]} << 24) | (std::uint32_t{p[2]} << 16) |
                                                (std::uint32_t{p[3]} << 8) | std::uint32_t{p[4]});
    WriterSchema& w = writer_schema(id);
    avro_reader_memory_set_source(reader, reinterpret_cast<const char*>(p + 5), static_cast<int64_t>(m->len - 5));
    avro_value_reset(&w.value);
    if (avro_value_read(reader, &w.value) != 0) die(std::string("undecodable record: ") + avro_strerror());
    avro_value_t in, o;
    const char* str;
    size_t size;
    avro_value_get_by_index(&w.value, static_cast<size_t>(w.destination), &in, nullptr);
    avro_value_get_string(&in, &str, &size);
    int to = -1;
    for (int i = 0; i < 3 && to < 0; ++i)
      if (std::strcmp(str, kDestinations[i]) == 0) to = i;
    if (to < 0) die(std::string("destination_service_type '") + str + "' is not a routed destination");
    avro_value_get_by_index(&out, static_cast<size_t>(out_destination), &o, nullptr);
    avro_value_set_string_len(&o, str, size);
    avro_value_get_by_index(&w.value, static_cast<size_t>(w.origin), &in, nullptr);
    avro_value_get_string(&in, &str, &size);
    avro_value_get_by_index(&out, static_cast<size_t>(out_producer_id), &o, nullptr);
    avro_value_set_string_len(&o, str, size);
    avro_value_get_by_index(&w.value, static_cast<size_t>(w.payload), &in, nullptr);
    avro_value_get_string(&in, &str, &size);
    avro_value_get_by_index(&out, static_cast<size_t>(out_payload), &o, nullptr);
    avro_value_set_string_len(&o, str, size);
    int64_t ts;
    avro_value_get_by_index(&w.value, static_cast<size_t>(w.timestamp), &in, nullptr);
    avro_value_get_long(&in, &ts);
    avro_value_get_by_index(&out, static_cast<size_t>(out_producer_ts), &o, nullptr);
    avro_value_set_long(&o, ts);
    avro_value_get_by_index(&out, static_cast<size_t>(out_processor_ts), &o, nullptr);
    avro_value_set_long(&o, bench::now_ms());

    char* b = buffer.data();
    b[0] = 0;
    b[1] = static_cast<char>((s.out_schema_id >> 24) & 0xff);
    b[2] = static_cast<char>((s.out_schema_id >> 16) & 0xff);
    b[3] = static_cast<char>((s.out_schema_id >> 8) & 0xff);
    b[4] = static_cast<char>(s.out_schema_id & 0xff);
    avro_writer_memory_set_dest(writer, b + 5, static_cast<int64_t>(buffer.size() - 5));
    if (avro_value_write(writer, &out) != 0) die(std::string("Avro write: ") + avro_strerror());
    std::size_t len = 5 + static_cast<std::size_t>(avro_writer_tell(writer));

    while (true) {
      rd_kafka_resp_err_t rc = rd_kafka_producev(
          producer, RD_KAFKA_V_RKT(outputs[to]), RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_VALUE(b, len),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(rd_kafka_message_timestamp(m, nullptr)),
          RD_KAFKA_V_OPAQUE(batch), RD_KAFKA_V_END);
      if (rc == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (rc != RD_KAFKA_RESP_ERR__QUEUE_FULL) die(std::string("produce: ") + rd_kafka_err2str(rc));
      rd_kafka_poll(producer, 1);  // backpressure: serve delivery reports
    }
    ++batch->remaining;
    ++in_flight;
  }

  void run() {
    std::vector<rd_kafka_message_t*> msgs(static_cast<std::size_t>(s.batch));
    while (!stopping) {
      rd_kafka_poll(producer, 0);
      settle();
      if (!to_commit.empty()) commit(true);
      if (in_flight >= s.max_in_flight) {  // pipehost's max_in_flight_records
        rd_kafka_poll(producer, 10);
        continue;
      }
      rd_kafka_message_t* first = rd_kafka_consumer_poll(consumer, in_flight ? 5 : 100);
      std::size_t n = 0;
      if (first) {
        msgs[0] = first;
        ssize_t more = rd_kafka_consume_batch_queue(queue, 0, msgs.data() + 1, msgs.size() - 1);
        n = 1 + static_cast<std::size_t>(more > 0 ? more : 0);
      }
      auto batch = std::make_unique<Batch>();
      for (std::size_t i = 0; i < n; ++i) {
        rd_kafka_message_t* m = msgs[i];
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          mark_end(m->partition, true);
        } else if (m->err) {
          std::fprintf(stderr, "consumer: %s\n", rd_kafka_message_errstr(m));
        } else {
          mark_end(m->partition, false);
          route(m, batch.get());
          auto [it, added] = batch->next.try_emplace(m->partition, m->offset + 1);
          if (!added) it->second = std::max(it->second, m->offset + 1);
        }
        rd_kafka_message_destroy(m);
      }
      if (!batch->next.empty()) batches.push_back(std::move(batch));
      if (s.stop_at_end && in_flight == 0 && topic_read_to_end()) break;
    }
    drain(nullptr);
    bench::close_member(consumer, queue, ever_assigned);
    for (auto* t : outputs) rd_kafka_topic_destroy(t);
    rd_kafka_destroy(producer);
    writers.clear();
    avro_value_decref(&out);
    avro_value_iface_decref(out_iface);
    avro_schema_decref(out_schema);
    avro_reader_free(reader);
    avro_writer_free(writer);
  }
};

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  Settings s;
  s.brokers = args.str("brokers", "127.0.0.1:19092");
  s.registry = args.str("registry");
  s.topic = args.str("topic");
  s.group = args.str("group");
  s.prefix = args.str("prefix");
  s.processor_id = args.str("processor-id", "event-processor-1");
  s.batch = static_cast<int>(args.num("batch", 512));
  s.max_in_flight = static_cast<std::size_t>(args.num("max-in-flight", 16384));
  s.stop_at_end = args.num("stop-at-end", 1) != 0;
  s.props = args.str("props");
  int threads = static_cast<int>(args.num("threads", 3));
  std::string out_schema_file = args.str("out-schema");
  if (s.topic.empty() || s.group.empty() || s.prefix.empty() || s.registry.empty() || out_schema_file.empty()) {
    std::fprintf(stderr, "usage: route_baseline --registry URL --topic T --group G --prefix P --out-schema FILE ...\n");
    return 2;
  }
  std::ifstream in(out_schema_file);
  if (!in) die("cannot read " + out_schema_file);
  std::stringstream text;
  text << in.rdbuf();
  s.out_schema_text = text.str();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  auto start = std::chrono::steady_clock::now();
  {
    avro_schema_decref(parse_schema(s.out_schema_text));  // a bad file fails before registering
    Registry registry(s.registry);
    s.out_schema_id = registry.register_schema(s.prefix + ".processor.to.consumer-value", s.out_schema_text);
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
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < threads; ++i) workers.push_back(std::make_unique<Worker>(s));
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
  std::vector<std::pair<std::string, std::string>> settings;
  for (auto& [k, v] : consumer_settings(s))
    if (k != "group.id") settings.push_back({"consumer " + k, v});
  for (auto& [k, v] : producer_settings()) settings.push_back({"producer " + k, v});
  settings.push_back({"(threads, each a consumer and a producer)", std::to_string(threads)});
  settings.push_back({"(batch)", std::to_string(s.batch)});
  settings.push_back({"(max in flight per thread)", std::to_string(s.max_in_flight)});
  settings.push_back({"(writer schema)", "GET /schemas/ids/<id> with libcurl, cached"});
  std::printf("{\"records\":%llu,\"seconds\":%.3f,\"latency_ms\":%s,\"librdkafka\":\"%s\",\"settings\":%s}\n",
              static_cast<unsigned long long>(records), seconds, all.json().c_str(), rd_kafka_version_str(),
              bench::settings_json(settings).c_str());
  curl_global_cleanup();
  return 0;
}
