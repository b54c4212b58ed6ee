// Contender (a) of the produce pipeline: generate transactions (the same generator as
// pipehost's datagen: splitmix64 of (seed, index), uuid v4, IBAN-like account out of
// `accounts`, reference, now timestamp, amount uniform in [1.00, 1000.00]), encode
// with the protoc-generated class, prefix the Confluent framing (0x00, 4-byte BE schema
// id, message index [0] = 0x00), produce keyed by account with an idempotent producer
// using exactly pipehost's kafka sink settings, wait for every delivery report.
//
// usage: produce_baseline --brokers B --topic T --schema-id N [--count 2000000]
//          [--seed 42] [--accounts 20] [--rate 0] [--sums FILE]
//        produce_baseline --dry-run 1 [--decode 1] --schema-id N [--count ...]
// --dry-run generates and encodes without Kafka (bench/instructions counts its
// instructions per record); --decode 1 also strips the framing, parses each payload and
// sums it per account, as consume_baseline does for each record it reads.
// Prints one JSON line: records, seconds, delivery latency (generation to delivery
// report) percentiles, librdkafka version and settings. --sums writes the per-account
// totals in cents of what was delivered, as JSON.
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <thread>
#include <unordered_map>

#include "common.hpp"
#include "transactions.pb.h"

namespace {

std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
struct Draws {
  std::uint64_t state;
  std::uint64_t next() { return state = mix(state); }
};
const char kHex[] = "0123456789abcdef";

void uuid_v4(Draws& d, std::string& out) {
  std::uint64_t hi = d.next(), lo = d.next();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  out.clear();
  for (int i = 15; i >= 0; --i) {
    out += kHex[(hi >> (i * 4)) & 0xf];
    if (i == 8 || i == 4) out += '-';
  }
  out += '-';
  for (int i = 15; i >= 0; --i) {
    out += kHex[(lo >> (i * 4)) & 0xf];
    if (i == 12) out += '-';
  }
}

std::string iban_like(std::uint64_t bits) {
  const char* banks[] = {"JAGO", "WEST", "NWBK", "BARC", "MIDL"};
  std::string bank = banks[bits % 5];
  std::string digits;
  std::uint64_t n = bits / 5;
  for (int i = 0; i < 14; ++i, n /= 10) digits += static_cast<char>('0' + n % 10);
  std::string rearranged = bank + digits + "GB00";
  int remainder = 0;
  for (char c : rearranged) {
    int v = (c >= 'A' && c <= 'Z') ? c - 'A' + 10 : c - '0';
    remainder = (v >= 10 ? remainder * 100 + v : remainder * 10 + v) % 97;
  }
  int check = 98 - remainder;
  return "GB" + std::string(1, static_cast<char>('0' + check / 10)) +
         static_cast<char>('0' + check % 10) + bank + digits;
}

std::atomic<std::uint64_t> delivered{0}, failed{0};
bench::Histogram latency;  // only touched by the delivery callback (poll thread = main)
bool measure_latency = false;

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  if (m->err) {
    if (failed++ == 0) std::fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(m->err));
    return;
  }
  ++delivered;
  // The message timestamp is the generation time (set at produce).
  latency.add(bench::now_ms() - rd_kafka_message_timestamp(m, nullptr));
}

// One transaction of the generator, encoded and framed into `payload`.
struct Encoder {
  Encoder(std::uint64_t seed, const std::vector<std::string>& accounts, std::uint32_t schema_id)
      : seed(seed),
        accounts(accounts),
        framing{0, static_cast<char>(schema_id >> 24), static_cast<char>(schema_id >> 16),
                static_cast<char>(schema_id >> 8), static_cast<char>(schema_id), 0} {}
  // Returns the account's index; `cents` is the amount.
  std::size_t make(std::uint64_t index, std::int64_t now_us, std::int64_t& cents) {
    Draws d{mix(seed ^ mix(index))};
    std::size_t a = d.next() % accounts.size();
    cents = 100 + static_cast<std::int64_t>(d.next() % 99901);
    reference = "TRX";
    std::uint64_t r = d.next();
    for (int k = 0; k < 12; ++k, r /= 36) reference += "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[r % 36];
    uuid_v4(d, uuid);
    t.set_transaction_id(uuid);
    t.set_account_number(accounts[a]);
    t.set_transaction_reference(reference);
    t.mutable_transaction_datetime()->set_seconds(now_us / 1000000);
    t.mutable_transaction_datetime()->set_nanos(static_cast<int>(now_us % 1000000) * 1000);
    t.set_amount(static_cast<double>(cents) / 100.0);
    payload.assign(framing, sizeof framing);
    t.AppendToString(&payload);
    return a;
  }
  std::uint64_t seed;
  const std::vector<std::string>& accounts;
  char framing[6];
  Transaction t;
  std::string uuid, reference, payload;
};

// --dry-run: the generator and encoder without Kafka, in batches of 512 as datagen makes
// them; --decode: each payload then read back as consume_baseline reads a record (strip
// the framing, parse, sum per account in cents, per batch). Prints the records made.
int dry_run_main(std::uint64_t count, std::uint64_t seed, const std::vector<std::string>& accounts,
                 std::uint32_t schema_id, bool decode) {
  Encoder encoder(seed, accounts, schema_id);
  Transaction read;
  std::unordered_map<std::string, std::int64_t> sums;
  std::int64_t total = 0;
  for (std::uint64_t made = 0; made < count;) {
    std::uint64_t n = std::min<std::uint64_t>(512, count - made);
    std::int64_t now = bench::now_us();
    sums.clear();
    for (std::uint64_t i = 0; i < n; ++i) {
      std::int64_t cents = 0;
      encoder.make(made + i, now, cents);
      if (!decode) continue;
      auto* p = reinterpret_cast<const unsigned char*>(encoder.payload.data());
      std::size_t len = encoder.payload.size();
      if (!bench::strip_framing(p, len) || !read.ParseFromArray(p, static_cast<int>(len))) return 1;
      sums[read.account_number()] += std::llround(read.amount() * 100.0);
    }
    for (const auto& [account, sum] : sums) total += sum;
    made += n;
  }
  std::printf("{\"records\":%llu,\"total_cents\":%lld}\n", static_cast<unsigned long long>(count),
              static_cast<long long>(total));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  const std::string topic = args.str("topic");
  const auto count = static_cast<std::uint64_t>(args.num("count", 2000000));
  const auto seed = static_cast<std::uint64_t>(args.num("seed", 42));
  const int accounts_n = static_cast<int>(args.num("accounts", 20));
  const double rate = args.real("rate", 0);
  const auto schema_id = static_cast<std::uint32_t>(args.num("schema-id", -1));
  const bool dry_run = args.num("dry-run", 0) != 0, decode = args.num("decode", 0) != 0;
  if ((topic.empty() && !dry_run) || args.num("schema-id", -1) < 0) {
    std::fprintf(stderr, "usage: produce_baseline --brokers B --topic T --schema-id N ...\n");
    return 2;
  }
  measure_latency = rate > 0;
  std::vector<std::string> accounts;
  {
    std::set<std::string> seen;
    for (std::uint64_t i = 0; static_cast<int>(accounts.size()) < accounts_n; ++i) {
      std::string a = iban_like(mix(seed ^ mix(0xacc0u + i)));
      if (seen.insert(a).second) accounts.push_back(a);
    }
  }
  if (dry_run) return dry_run_main(count, seed, accounts, schema_id, decode);

  // Exactly the kafka sink's defaults (plugins/kafka/kafka_sink.cpp).
  std::vector<std::pair<std::string, std::string>> settings = {
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"linger.ms", "5"},
      {"batch.num.messages", "10000"},
      {"queue.buffering.max.kbytes", "16384"},
      {"queue.buffering.max.messages", "100000"},
      {"bootstrap.servers", args.str("brokers", "127.0.0.1:19092")},
  };
  rd_kafka_conf_t* conf = bench::make_conf(settings);
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    std::fprintf(stderr, "rd_kafka_new: %s\n", err);
    return 1;
  }

  std::vector<std::int64_t> sums(accounts.size(), 0);

  Encoder encoder(seed, accounts, schema_id);
  auto start = std::chrono::steady_clock::now();
  std::uint64_t made = 0;
  while (made < count) {
    // Like datagen: one timestamp per batch of up to 512 (rate-limited: what is due).
    std::uint64_t n = std::min<std::uint64_t>(512, count - made);
    if (rate > 0) {
      while (true) {
        double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        auto allowed = static_cast<std::uint64_t>(elapsed * rate) + 1;
        if (allowed > made) {
          n = std::min(n, allowed - made);
          break;
        }
        rd_kafka_poll(rk, 0);
        std::this_thread::sleep_for(std::chrono::microseconds(std::max<long>(100, static_cast<long>(1e6 / rate))));
      }
    }
    std::int64_t now = bench::now_us();
    for (std::uint64_t i = 0; i < n; ++i) {
      std::int64_t cents = 0;
      std::size_t a = encoder.make(made + i, now, cents);
      std::string& payload = encoder.payload;
      sums[a] += cents;
      while (true) {
        rd_kafka_resp_err_t rc = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic.c_str()),
            RD_KAFKA_V_KEY(accounts[a].data(), accounts[a].size()),
            RD_KAFKA_V_VALUE(payload.data(), payload.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_TIMESTAMP(now / 1000), RD_KAFKA_V_END);
        if (rc == RD_KAFKA_RESP_ERR_NO_ERROR) break;
        if (rc != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
          std::fprintf(stderr, "produce: %s\n", rd_kafka_err2str(rc));
          return 1;
        }
        rd_kafka_poll(rk, 1);  // backpressure: serve delivery reports
      }
    }
    made += n;
    rd_kafka_poll(rk, 0);
  }
  while (rd_kafka_outq_len(rk) > 0) rd_kafka_flush(rk, 1000);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  rd_kafka_destroy(rk);
  if (failed) {
    std::fprintf(stderr, "%llu deliveries failed\n", static_cast<unsigned long long>(failed.load()));
    return 1;
  }
  if (std::string path = args.str("sums"); !path.empty()) {
    std::ofstream out(path);
    out << "{";
    for (std::size_t i = 0; i < accounts.size(); ++i)
      out << (i ? "," : "") << "\"" << accounts[i] << "\":" << sums[i];
    out << "}\n";
  }
  settings.pop_back();  // bootstrap.servers: not a tuning setting
  std::printf("{\"records\":%llu,\"seconds\":%.3f,\"latency_ms\":%s,\"librdkafka\":\"%s\",\"settings\":%s}\n",
              static_cast<unsigned long long>(delivered.load()), seconds, latency.json().c_str(),
              rd_kafka_version_str(), bench::settings_json(settings).c_str());
  return 0;
}
