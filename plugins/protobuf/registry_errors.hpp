// A Schema Registry status as the exception the host expects, with what we were doing.
#pragma once
#include <string>

#include <pipehost/status.hpp>

namespace pipehost::protobuf {

inline void check(const Status& status, const std::string& doing) {
  if (status.is_ok()) return;
  const std::string message = doing + ": " + status.message();
  switch (status.code()) {
    case Code::invalid: throw InvalidRecord(message);
    case Code::retriable: throw RetriableError(message);
    default: throw FatalError(message);
  }
}

}  // namespace pipehost::protobuf
