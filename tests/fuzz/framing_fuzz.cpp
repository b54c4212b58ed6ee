// parse_frame over arbitrary bytes: a header it accepts must round-trip through
// write_frame; anything else must be rejected with pipehost::InvalidRecord.
#include <cstdint>
#include <pipehost/status.hpp>
#include <string>
#include <string_view>

#include "framing.hpp"
#include "fuzz_support.hpp"

using namespace pipehost::protobuf;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view payload(reinterpret_cast<const char*>(data), size);
  FrameHeader header;
  try {
    header = parse_frame(payload);
  } catch (const pipehost::InvalidRecord&) {
    return 0;
  } catch (...) {
    pipehost::fuzz::undocumented_exception("parse_frame");
  }
  FUZZ_CHECK(header.size >= 6 && header.size <= size);
  FUZZ_CHECK(header.path.size() <= MessagePath::kMaxDepth);
  for (std::size_t i = 0; i < header.path.size(); ++i) FUZZ_CHECK(header.path[i] >= 0);
  (void)header.path.to_string();

  std::string written;
  write_frame(written, header.schema_id, header.path);
  FrameHeader again;
  try {
    again = parse_frame(written);
  } catch (...) {
    pipehost::fuzz::undocumented_exception("parse_frame of write_frame's output");
  }
  FUZZ_CHECK(again.schema_id == header.schema_id);
  FUZZ_CHECK(again.path == header.path);
  FUZZ_CHECK(again.size == written.size());
  return 0;
}
