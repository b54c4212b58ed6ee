// The kafka plugin's components built through its declaration, against librdkafka's
// mock cluster, with a TestContext pointing at it.
#pragma once
#include <doctest/doctest.h>

#include <pipehost/testing.hpp>

#include "../../../tests/support/mock_kafka.hpp"

extern "C" const pipehost::PluginSpec* pipehost_plugin(const char** error) noexcept;

namespace pipehost::kafka::test {

inline const ComponentSpec& component(const char* name, Kind kind) {
  const char* error = nullptr;
  const PluginSpec* spec = pipehost_plugin(&error);
  REQUIRE(spec);
  for (const auto& c : spec->components)
    if (c.name == name && c.kind == kind) return c;
  FAIL("no component " << name);
  throw;
}

inline std::unique_ptr<SourceStage> source(testing::TestContext& context,
                                           std::map<std::string, OptionValue> options) {
  const ComponentSpec& c = component("kafka", Kind::source);
  std::string error;
  auto s = c.make_source(testing::options_for(c.options, std::move(options)), context, error);
  REQUIRE_MESSAGE(s, error);
  return s;
}

inline std::unique_ptr<SinkStage> sink(testing::TestContext& context,
                                       std::map<std::string, OptionValue> options) {
  const ComponentSpec& c = component("kafka", Kind::sink);
  std::string error;
  auto s = c.make_sink(testing::options_for(c.options, std::move(options)), context, error);
  REQUIRE_MESSAGE(s, error);
  return s;
}

// A producer writing `n` records "<i>" keyed "k<i>" to one partition; odd ones carry a
// header "n" = "<i>", and every third a header "pipehost.subject", which the source drops.
inline void produce(const std::string& bootstrap, const std::string& topic, std::int32_t partition,
                    int n, int first = 0) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
  rd_kafka_t* p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  for (int i = first; i < first + n; ++i) {
    std::string key = "k" + std::to_string(i), value = std::to_string(i);
    rd_kafka_headers_t* headers = rd_kafka_headers_new(1);
    if (i % 3 == 0) rd_kafka_header_add(headers, "pipehost.subject", -1, "from-the-sender", -1);
    if (i % 2) rd_kafka_header_add(headers, "n", -1, value.data(), static_cast<ssize_t>(value.size()));
    rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
                      RD_KAFKA_V_KEY(key.data(), key.size()),
                      RD_KAFKA_V_VALUE(value.data(), value.size()),
                      RD_KAFKA_V_HEADERS(headers),  // owned by the message from here
                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
  }
  rd_kafka_flush(p, 10000);
  rd_kafka_destroy(p);
}

}  // namespace pipehost::kafka::test
