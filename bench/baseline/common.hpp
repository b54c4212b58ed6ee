// Shared bits of the baseline contenders: argument parsing, a 1 ms latency histogram
// (the same buckets as pipehost's --stats) and the librdkafka settings dump.
#pragma once
#include <librdkafka/rdkafka.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace bench {

inline std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
inline std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Closes a consumer group member. librdkafka 2.0.2 aborts (rd_kafka_sticky_assignor_state_
// destroy: Assertion `assignor_state' failed, its issue #4312) when a cooperative-sticky
// consumer that was never assigned is closed or destroyed, as a member can be when the
// others read a small topic to its end first: serve the group until its first assignment
// (up to 10 s; records polled then were read by the others), as pipehost's kafka source
// does. A member still unassigned is left open: the process is ending.
inline void close_member(rd_kafka_t* rk, rd_kafka_queue_t* queue, const bool& ever_assigned) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!ever_assigned && std::chrono::steady_clock::now() < deadline)
    if (rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100)) rd_kafka_message_destroy(m);
  if (!ever_assigned) return;
  rd_kafka_consumer_close(rk);
  rd_kafka_queue_destroy(queue);
  rd_kafka_destroy(rk);
}

// --name value pairs.
struct Args {
  std::map<std::string, std::string> values;
  Args(int argc, char** argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
      std::string k = argv[i];
      if (k.rfind("--", 0) != 0) {
        std::fprintf(stderr, "bad argument %s\n", argv[i]);
        std::exit(2);
      }
      values[k.substr(2)] = argv[i + 1];
    }
  }
  std::string str(const std::string& k, const std::string& def = "") const {
    auto it = values.find(k);
    return it == values.end() ? def : it->second;
  }
  long long num(const std::string& k, long long def) const {
    auto it = values.find(k);
    return it == values.end() ? def : std::atoll(it->second.c_str());
  }
  double real(const std::string& k, double def) const {
    auto it = values.find(k);
    return it == values.end() ? def : std::atof(it->second.c_str());
  }
};

struct Histogram {
  static constexpr int kBuckets = 10001;
  std::vector<std::uint64_t> buckets = std::vector<std::uint64_t>(kBuckets, 0);
  void add(std::int64_t ms, std::uint64_t n = 1) {
    if (ms < 0) ms = 0;
    buckets[ms >= kBuckets - 1 ? kBuckets - 1 : ms] += n;
  }
  void merge(const Histogram& o) {
    for (int i = 0; i < kBuckets; ++i) buckets[i] += o.buckets[i];
  }
  std::uint64_t count() const {
    std::uint64_t n = 0;
    for (auto b : buckets) n += b;
    return n;
  }
  std::int64_t percentile(double f) const {
    std::uint64_t total = count();
    if (!total) return -1;
    auto wanted = static_cast<std::uint64_t>(f * static_cast<double>(total) + 0.5);
    if (!wanted) wanted = 1;
    std::uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i)
      if ((seen += buckets[i]) >= wanted) return i;
    return kBuckets - 1;
  }
  std::string json() const {
    char b[256];
    std::snprintf(b, sizeof b, "{\"count\":%llu,\"p50\":%lld,\"p99\":%lld,\"p999\":%lld,\"max\":%lld}",
                  static_cast<unsigned long long>(count()), static_cast<long long>(percentile(0.5)),
                  static_cast<long long>(percentile(0.99)), static_cast<long long>(percentile(0.999)),
                  static_cast<long long>(percentile(1.0)));
    return b;
  }
};

inline std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o;
}

inline std::string settings_json(const std::vector<std::pair<std::string, std::string>>& s) {
  std::string o = "{";
  for (std::size_t i = 0; i < s.size(); ++i)
    o += (i ? "," : "") + std::string("\"") + json_escape(s[i].first) + "\":\"" +
         json_escape(s[i].second) + "\"";
  return o + "}";
}

inline rd_kafka_conf_t* make_conf(const std::vector<std::pair<std::string, std::string>>& s) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [k, v] : s)
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      std::fprintf(stderr, "%s = %s: %s\n", k.c_str(), v.c_str(), err);
      std::exit(2);
    }
  return conf;
}

// Confluent framing: magic 0, 4-byte id, message-index path (zig-zag varints).
inline bool strip_framing(const unsigned char*& p, std::size_t& n) {
  if (n < 6 || p[0] != 0) return false;
  std::size_t i = 5;
  auto varint = [&](std::uint64_t& v) {
    v = 0;
    for (int shift = 0; i < n && shift < 64; shift += 7) {
      unsigned char b = p[i++];
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  };
  std::uint64_t count;
  if (!varint(count)) return false;
  count = (count >> 1) ^ -(count & 1);
  for (std::uint64_t k = 0; k < count; ++k) {
    std::uint64_t ignored;
    if (!varint(ignored)) return false;
  }
  p += i;
  n -= i;
  return true;
}

}  // namespace bench
