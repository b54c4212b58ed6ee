// Building librdkafka configurations from the host's settings and a stage's options.
#pragma once
#include <librdkafka/rdkafka.h>

#include <string>
#include <string_view>

#include <pipehost/kafka_topic_name.hpp>
#include <pipehost/sdk.hpp>
#include <pipehost/subject_header.hpp>

namespace pipehost::kafka {

// Applies, in order: our defaults, the file's [kafka.properties], the stage's
// `properties`, then bootstrap.servers. Throws FatalError naming a bad property.
rd_kafka_conf_t* make_conf(Context& context, const StringMap& defaults, const StringMap& stage);

std::string error_text(rd_kafka_resp_err_t err);

// A numeric property of `conf` (as librdkafka holds it), or `otherwise`.
long long conf_number(const rd_kafka_conf_t* conf, const char* name, long long otherwise);

// Config checks shared by the source and the sink: every property of `properties` is one
// librdkafka accepts; the brokers answer (a real cluster; the embedded one starts with
// the run).
void check_properties(const StringMap& properties, Checker& checker);
void check_broker(Checker& checker);

}  // namespace pipehost::kafka
