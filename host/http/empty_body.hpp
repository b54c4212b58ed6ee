// A request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112,
// 6.3): `curl -X POST URL` sends one. cpp-httplib 0.11.4 instead reads until its read
// timeout (5 s) and then answers 400. Called from a pre-routing handler, before httplib
// reads the body: saying Content-Length: 0 has it read none. (The request is httplib's
// own non-const object, handed to the handler as const.)
#pragma once
#include <httplib.h>

namespace pipehost::host {

inline void no_length_means_no_body(const httplib::Request& req) {
  if (req.has_header("Content-Length") || req.has_header("Transfer-Encoding")) return;
  const_cast<httplib::Request&>(req).headers.emplace("Content-Length", "0");
}

}  // namespace pipehost::host
