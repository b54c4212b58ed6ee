#include "kafka_config.hpp"

#include <cstdlib>

#include <pipehost/redact.hpp>

namespace pipehost::kafka {

rd_kafka_conf_t* make_conf(Context& context, const StringMap& defaults, const StringMap& stage) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  auto apply = [&](const StringMap& props, const char* origin) {
    for (const auto& [k, v] : props) {
      if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        throw FatalError(std::string("librdkafka property from ") + origin + ": " + k + " = " +
                         redact::value(k, v) +
                         ": " + err);
      }
    }
  };
  apply(defaults, "pipehost defaults");
  apply(context.kafka_properties(), "[kafka.properties]");
  apply(stage, "the stage's properties");
  apply({{"bootstrap.servers", context.kafka_bootstrap()}}, "[kafka] brokers");
  return conf;
}

std::string error_text(rd_kafka_resp_err_t err) { return rd_kafka_err2str(err); }

long long conf_number(const rd_kafka_conf_t* conf, const char* name, long long otherwise) {
  char value[64] = "";
  size_t size = sizeof value;
  if (rd_kafka_conf_get(conf, name, value, &size) != RD_KAFKA_CONF_OK) return otherwise;
  char* end = nullptr;
  long long n = std::strtoll(value, &end, 10);
  return end != value ? n : otherwise;
}

void check_properties(const StringMap& properties, Checker& checker) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [k, v] : properties)
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
      checker.problem("properties", "librdkafka refuses " + k + " = " + redact::value(k, v) + ": " + err);
  rd_kafka_conf_destroy(conf);
}

void check_broker(Checker& checker) {
  Context& context = checker.context();
  std::string bootstrap = context.kafka_bootstrap();
  if (bootstrap.empty() || bootstrap == "embedded") return;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [k, v] : context.kafka_properties())
    rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
  rd_kafka_t* probe = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!probe) return checker.unreachable(std::string("cannot make a Kafka client: ") + err);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t rc = rd_kafka_metadata(probe, 0, nullptr, &md, 5000);
  if (md) rd_kafka_metadata_destroy(md);
  rd_kafka_destroy(probe);
  if (rc)
    checker.unreachable("Kafka at " + bootstrap + " did not answer: " + error_text(rc) +
                        " (is it running? check [kafka] brokers)");
}

}  // namespace pipehost::kafka
