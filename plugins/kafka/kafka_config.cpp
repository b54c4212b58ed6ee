#include "kafka_config.hpp"

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

}  // namespace pipehost::kafka
