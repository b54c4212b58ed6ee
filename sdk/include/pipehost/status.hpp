// Status crosses the plugin boundary instead of exceptions; the error exceptions below
// are what plugin code throws, and the SDK's guards turn them into a Status.
#pragma once
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace pipehost {

enum class Code {
  ok,
  invalid,    // this record is bad: dead-letter, skip or fail per the pipeline's policy
              // (from RecordTransform::apply; a batch-level stage rejects with
              // Batch::reject, as one thrown from process, prepare or write stops the pipeline)
  retriable,  // a service is unavailable: the host retries the same call with backoff
  fatal,      // the stage cannot go on: its pipeline stops
  rewind,     // a sink's stored position is behind the batch: the source reads again from it
  cancelled,  // given up because the host is stopping: not a failure, not committed
};

class Status {
 public:
  Status() = default;
  static Status ok() { return {}; }
  static Status invalid(std::string message) { return {Code::invalid, std::move(message)}; }
  static Status retriable(std::string message) { return {Code::retriable, std::move(message)}; }
  static Status fatal(std::string message) { return {Code::fatal, std::move(message)}; }
  static Status rewind(std::string message) { return {Code::rewind, std::move(message)}; }
  static Status cancelled(std::string message) { return {Code::cancelled, std::move(message)}; }

  bool is_ok() const { return code_ == Code::ok; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  Code code_ = Code::ok;
  std::string message_;
};

// Throw these from plugin code. Anything else thrown is treated as fatal.
struct InvalidRecord : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct RetriableError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct FatalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Thrown by a sink that stores source positions with its data when a batch does not
// continue from the position it holds (its store lost writes: a restart without fsync,
// a failover to a lagging replica). Nothing of the batch may have been written. The
// host asks the sink for its stored positions and rewinds the source to them, so the
// lost records are read again instead of skipped.
struct PositionMismatch : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Turns a host-returned Status back into the matching exception (plugin side), its
// message prefixed with what the plugin was doing when given: "fetching schema id 7: ...".
inline void throw_if_error(const Status& status, std::string_view doing = {}) {
  if (status.is_ok()) return;
  const std::string message =
      doing.empty() ? status.message() : std::string(doing) + ": " + status.message();
  switch (status.code()) {
    case Code::ok: return;
    case Code::invalid: throw InvalidRecord(message);
    case Code::retriable: throw RetriableError(message);
    case Code::rewind: throw PositionMismatch(message);
    case Code::fatal:
    case Code::cancelled: throw FatalError(message);
  }
}

}  // namespace pipehost
