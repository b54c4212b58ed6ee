#include "framing.hpp"

#include <doctest/doctest.h>

#include <pipehost/status.hpp>

#include "test_support.hpp"

using namespace pipehost;
using namespace pipehost::protobuf;
using test::bytes;

namespace {
MessagePath path(std::initializer_list<int> indexes) {
  MessagePath p = MessagePath::empty();
  for (int i : indexes) p.push(i);
  return p;
}
std::string framed(std::int32_t id, const MessagePath& p) {
  std::string out;
  write_frame(out, id, p);
  return out;
}
}  // namespace

TEST_CASE("framing: [0] is written in its short form, a single 0x00") {
  CHECK(framed(7, path({0})) == bytes({0, 0, 0, 0, 7, 0x00}));
  CHECK(framed(7, MessagePath()) == bytes({0, 0, 0, 0, 7, 0x00}));
}

TEST_CASE("framing: schema id is 4 bytes big-endian") {
  const FrameHeader h = parse_frame(bytes({0, 0x01, 0x02, 0x03, 0x04, 0x00, 0x0a}));
  CHECK(h.schema_id == 0x01020304);
  CHECK(h.size == 6);
  CHECK(h.path == path({0}));
}

TEST_CASE("framing: ids a registry never gives (0, negative) are refused without asking it") {
  CHECK_THROWS_WITH_AS(parse_frame(bytes({0, 0, 0, 0, 0, 0x00})), doctest::Contains("schema id 0 is not one"),
                       InvalidRecord);
  CHECK_THROWS_WITH_AS(parse_frame(bytes({0, 0xff, 0xff, 0xff, 0xfb, 0x00})),
                       doctest::Contains("schema id -5 is not one"), InvalidRecord);
}

TEST_CASE("framing: every index-path form parses and round-trips") {
  struct Case {
    std::string wire;
    MessagePath path;
  };
  const Case cases[] = {
      {bytes({0x00}), path({0})},                                  // short form of [0]
      {bytes({0x02, 0x00}), path({0})},                            // long form of [0]
      {bytes({0x02, 0x02}), path({1})},                            // [1]
      {bytes({0x04, 0x00, 0x02}), path({0, 1})},                   // [0, 1]
      {bytes({0x06, 0x04, 0x00, 0xd8, 0x04}), path({2, 0, 300})},  // multi-byte varint
  };
  for (const auto& c : cases) {
    CAPTURE(c.path.to_string());
    const std::string payload = bytes({0, 0, 0, 0, 9}) + c.wire + "body";
    const FrameHeader h = parse_frame(payload);
    CHECK(h.schema_id == 9);
    CHECK(h.path == c.path);
    CHECK(payload.substr(h.size) == "body");
    const FrameHeader again = parse_frame(framed(9, c.path));
    CHECK(again.path == c.path);
  }
  CHECK(framed(9, path({1})) == bytes({0, 0, 0, 0, 9, 0x02, 0x02}));
  CHECK(framed(9, path({0, 1})) == bytes({0, 0, 0, 0, 9, 0x04, 0x00, 0x02}));
}

TEST_CASE("framing: bad input is rejected with a clear message") {
  CHECK_THROWS_WITH_AS(parse_frame(""), doctest::Contains("payload too short"), InvalidRecord);
  CHECK_THROWS_WITH_AS(parse_frame(bytes({1, 0, 0, 0, 1, 0})),
                       "not Confluent framing: magic byte is 1, expected 0", InvalidRecord);
  CHECK_THROWS_WITH_AS(parse_frame(bytes({'{', '"', 'a', '"', ':', '1', '}'})),
                       doctest::Contains("magic byte is 123"), InvalidRecord);
  CHECK_THROWS_WITH_AS(parse_frame(bytes({0, 0, 0, 1})),
                       doctest::Contains("payload too short: 4 bytes"), InvalidRecord);
  CHECK_THROWS_WITH_AS(parse_frame(bytes({0, 0, 0, 0, 1, 0x04, 0x00})),
                       doctest::Contains("message-index path is cut off"), InvalidRecord);
  CHECK_THROWS_WITH_AS(parse_frame(bytes({0, 0, 0, 0, 1, 0x01})),
                       doctest::Contains("negative message-index count"), InvalidRecord);
  CHECK_THROWS_WITH_AS(parse_frame(bytes({0, 0, 0, 0, 1, 0x02, 0x03})),
                       doctest::Contains("negative message index"), InvalidRecord);
  CHECK_THROWS_WITH_AS(parse_frame(bytes({0, 0, 0, 0, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})),
                       doctest::Contains("longer than 5 bytes"), InvalidRecord);
  CHECK_THROWS_WITH_AS(parse_frame(bytes({0, 0, 0, 0, 1, 0x7e})),
                       doctest::Contains("message-index path of 63 entries"), InvalidRecord);
}
