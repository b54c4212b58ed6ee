#include "runtime/dead_letter.hpp"

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>

namespace pipehost::host {

// One per write() call, on the heap and shared by every message the call produced: a
// delivery report may arrive after write() returned (a flush that timed out), and must
// then find the outcome alive and separate from the next call's.
struct DeadLetterWriter::Outcome {
  std::atomic<std::size_t> pending{0};
  std::atomic<bool> failed{false};
  std::mutex mutex;
  std::string first_error;
  bool retriable = true;  // the first error was a timeout or transport error
};

namespace {

using OutcomeRef = std::shared_ptr<DeadLetterWriter::Outcome>;

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* message, void*) {
  auto* ref = static_cast<OutcomeRef*>(message->_private);
  DeadLetterWriter::Outcome& outcome = **ref;
  if (message->err && !outcome.failed.exchange(true)) {
    std::lock_guard lock(outcome.mutex);
    outcome.first_error = rd_kafka_err2str(message->err);
    outcome.retriable = message->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT ||
                        message->err == RD_KAFKA_RESP_ERR__TIMED_OUT ||
                        message->err == RD_KAFKA_RESP_ERR__TRANSPORT;
  }
  outcome.pending.fetch_sub(1);
  delete ref;
}

}  // namespace

DeadLetterWriter::DeadLetterWriter(const Services& services, std::string topic, std::string pipeline,
                                   Timeouts timeouts)
    : services_(services), topic_(std::move(topic)), pipeline_(std::move(pipeline)),
      timeouts_(timeouts) {}

DeadLetterWriter::~DeadLetterWriter() {
  if (producer_) {
    rd_kafka_flush(producer_, 10000);
    // Destroying the producer runs the reports of what is left, so every outcome is freed.
    rd_kafka_destroy(producer_);
  }
}

Status DeadLetterWriter::connect() {
  if (producer_) return Status::ok();
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [k, v] : services_.kafka_properties)
    rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "bootstrap.servers", services_.kafka_bootstrap.c_str(), err, sizeof err);
  rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err);
  rd_kafka_conf_set(conf, "linger.ms", "0", err, sizeof err);
  rd_kafka_conf_set(conf, "message.timeout.ms", std::to_string(timeouts_.message_ms).c_str(), err,
                    sizeof err);
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!producer_) return Status::fatal(std::string("dead-letter producer: ") + err);
  return Status::ok();
}

Status DeadLetterWriter::write(const std::vector<Rejection>& rejections, const std::string& stage,
                               const std::function<bool()>& stopping) {
  if (Status s = connect(); !s.is_ok()) return s;
  auto outcome = std::make_shared<Outcome>();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeouts_.write_ms);
  auto given_up = [&] { return std::chrono::steady_clock::now() > deadline || stopping(); };
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
    auto* ref = new OutcomeRef(outcome);
    outcome->pending.fetch_add(1);
    for (;;) {
      rd_kafka_resp_err_t rc = rd_kafka_producev(
          producer_, RD_KAFKA_V_TOPIC(topic_.c_str()),
          RD_KAFKA_V_KEY(const_cast<char*>(rec.key.data()), rec.key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(rec.payload.data()), rec.payload.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
          RD_KAFKA_V_OPAQUE(ref), RD_KAFKA_V_END);
      if (rc == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (rc == RD_KAFKA_RESP_ERR__QUEUE_FULL && !given_up()) {
        rd_kafka_poll(producer_, 10);  // serves reports, which make room
        continue;
      }
      rd_kafka_headers_destroy(headers);
      outcome->pending.fetch_sub(1);
      delete ref;
      // Messages already queued keep their own reference to the outcome.
      return Status::retriable("dead-letter topic " + topic_ + ": " + rd_kafka_err2str(rc));
    }
  }
  while (outcome->pending.load() > 0) {
    if (given_up())
      return Status::retriable("dead-letter topic " + topic_ + ": " +
                               std::to_string(outcome->pending.load()) +
                               " records not confirmed by the broker in time");
    rd_kafka_poll(producer_, 50);
  }
  if (outcome->failed) {
    std::lock_guard lock(outcome->mutex);
    std::string message = "dead-letter topic " + topic_ + ": " + outcome->first_error;
    return outcome->retriable ? Status::retriable(message) : Status::fatal(message);
  }
  return Status::ok();
}

}  // namespace pipehost::host
