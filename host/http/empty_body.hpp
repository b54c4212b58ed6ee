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

// cpp-httplib 0.11.4 reads a chunked body whatever its size (set_payload_max_length counts
// Content-Length only: 300 chunks of 1 MiB grew the process by 337 MB). Answered 411
// before httplib reads it; the connection then closes, as what follows the headers (a
// chunk size, never a request line) cannot be read as the next request.
inline bool refuse_chunked_body(const httplib::Request& req, httplib::Response& res) {
  if (!req.has_header("Transfer-Encoding")) return false;
  res.status = 411;
  res.set_header("Connection", "close");
  res.set_content(R"({"error":"send the body with a Content-Length: pipehost does not read chunked bodies"})",
                  "application/json");
  return true;
}

}  // namespace pipehost::host
