#include "runtime/dead_letter.hpp"

#include <librdkafka/rdkafka.h>

#include <atomic>

namespace pipehost::host {
namespace {
struct Outcome {
  std::atomic<int> failed{0};
  std::string first_error;
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* message, void*) {
  auto* outcome = static_cast<Outcome*>(message->_private);
  if (message->err && outcome->failed.fetch_add(1) == 0)
    outcome->first_error = rd_kafka_err2str(message->err);
}
}  // namespace

DeadLetterWriter::DeadLetterWriter(const Services& services, std::string topic, std::string pipeline)
    : services_(services), topic_(std::move(topic)), pipeline_(std::move(pipeline)) {}

DeadLetterWriter::~DeadLetterWriter() {
  if (producer_) {
    rd_kafka_flush(producer_, 10000);
    rd_kafka_destroy(producer_);
  }
}

Status DeadLetterWriter::write(const std::vector<Rejection>& rejections, const std::string& stage) {
  char err[512];
  if (!producer_) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    for (const auto& [k, v] : services_.kafka_properties)
      rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "bootstrap.servers", services_.kafka_bootstrap.c_str(), err, sizeof err);
    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err);
    rd_kafka_conf_set(conf, "linger.ms", "0", err, sizeof err);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!producer_) return Status::fatal(std::string("dead-letter producer: ") + err);
  }
  Outcome outcome;
  for (const auto& r : rejections) {
    const Record& rec = r.record;
    rd_kafka_headers_t* headers = rd_kafka_headers_new(8);
    auto add = [&](const char* name, const std::string& value) {
      rd_kafka_header_add(headers, name, -1, value.data(), static_cast<ssize_t>(value.size()));
    };
    for (const auto& h : rec.headers) add(h.key.c_str(), h.value);
    add("pipehost.pipeline", pipeline_);
    add("pipehost.stage", stage);
    add("pipehost.error", r.reason);
    if (rec.origin.partition >= 0) {
      add("pipehost.origin.topic", std::string(rec.origin.topic));
      add("pipehost.origin.partition", std::to_string(rec.origin.partition));
      add("pipehost.origin.offset", std::to_string(rec.origin.offset));
    }
    rd_kafka_resp_err_t rc = rd_kafka_producev(
        producer_, RD_KAFKA_V_TOPIC(topic_.c_str()),
        RD_KAFKA_V_KEY(const_cast<char*>(rec.key.data()), rec.key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(rec.payload.data()), rec.payload.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
        RD_KAFKA_V_OPAQUE(&outcome), RD_KAFKA_V_END);
    if (rc) {
      rd_kafka_headers_destroy(headers);
      return Status::retriable("dead-letter topic " + topic_ + ": " + rd_kafka_err2str(rc));
    }
  }
  rd_kafka_resp_err_t rc = rd_kafka_flush(producer_, 30000);
  if (rc) return Status::retriable("dead-letter topic " + topic_ + ": flush: " + rd_kafka_err2str(rc));
  rd_kafka_poll(producer_, 0);
  if (outcome.failed) return Status::fatal("dead-letter topic " + topic_ + ": " + outcome.first_error);
  return Status::ok();
}

}  // namespace pipehost::host
