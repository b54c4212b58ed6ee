#include "framing.hpp"

#include <pipehost/status.hpp>

namespace pipehost::protobuf {
namespace {

constexpr unsigned char kMagicByte = 0x00;

// Kafka's signed varint: zig-zag encoded, at most 5 bytes for 32 bits.
std::int32_t read_zigzag(std::string_view in, std::size_t& pos) {
  std::uint32_t raw = 0;
  for (int shift = 0; shift < 35; shift += 7) {
    if (pos >= in.size()) throw InvalidRecord("payload too short: message-index path is cut off");
    const auto byte = static_cast<unsigned char>(in[pos++]);
    raw |= static_cast<std::uint32_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return static_cast<std::int32_t>((raw >> 1) ^ (~(raw & 1) + 1));
  }
  throw InvalidRecord("not Confluent framing: message-index varint longer than 5 bytes");
}

void write_zigzag(std::string& out, std::int32_t value) {
  auto raw = (static_cast<std::uint32_t>(value) << 1) ^ static_cast<std::uint32_t>(value >> 31);
  while (raw >= 0x80) {
    out.push_back(static_cast<char>((raw & 0x7f) | 0x80));
    raw >>= 7;
  }
  out.push_back(static_cast<char>(raw));
}

}  // namespace

std::string MessagePath::to_string() const {
  std::string s = "[";
  for (std::size_t i = 0; i < size_; ++i) {
    if (i) s += ", ";
    s += std::to_string(indexes_[i]);
  }
  return s + "]";
}

std::int32_t frame_schema_id(std::string_view payload) {
  if (payload.size() < 5 || static_cast<unsigned char>(payload[0]) != kMagicByte) return 0;
  std::uint32_t id = 0;
  for (int i = 1; i <= 4; ++i) id = (id << 8) | static_cast<unsigned char>(payload[i]);
  return static_cast<std::int32_t>(id);
}

FrameHeader parse_frame(std::string_view payload) {
  if (payload.empty())
    throw InvalidRecord("payload too short: empty value, expected Confluent framing");
  const auto magic = static_cast<unsigned char>(payload[0]);
  if (magic != kMagicByte)
    throw InvalidRecord("not Confluent framing: magic byte is " + std::to_string(magic) +
                        ", expected 0");
  if (payload.size() < 6)
    throw InvalidRecord("payload too short: " + std::to_string(payload.size()) +
                        " bytes, a Confluent protobuf header needs at least 6");
  FrameHeader h;
  h.schema_id = frame_schema_id(payload);
  if (h.schema_id <= 0)  // not asked of the registry: one HTTP call per such record
    throw InvalidRecord("schema id " + std::to_string(h.schema_id) +
                        " is not one a registry gives (they start at 1)");
  std::size_t pos = 5;
  const std::int32_t count = read_zigzag(payload, pos);
  if (count < 0) throw InvalidRecord("not Confluent framing: negative message-index count");
  if (static_cast<std::size_t>(count) > MessagePath::kMaxDepth)
    throw InvalidRecord("not Confluent framing: message-index path of " + std::to_string(count) +
                        " entries (at most " + std::to_string(MessagePath::kMaxDepth) + ")");
  if (count > 0) {
    h.path = MessagePath::empty();
    for (std::int32_t i = 0; i < count; ++i) {
      const std::int32_t index = read_zigzag(payload, pos);
      if (index < 0) throw InvalidRecord("not Confluent framing: negative message index");
      h.path.push(index);
    }
  }
  h.size = pos;
  return h;
}

void write_frame(std::string& out, std::int32_t schema_id, const MessagePath& path) {
  const auto id = static_cast<std::uint32_t>(schema_id);
  const char header[5] = {static_cast<char>(kMagicByte), static_cast<char>(id >> 24),
                          static_cast<char>(id >> 16), static_cast<char>(id >> 8),
                          static_cast<char>(id)};
  out.append(header, sizeof header);
  if (path.is_first()) {
    out.push_back('\0');
    return;
  }
  write_zigzag(out, static_cast<std::int32_t>(path.size()));
  for (std::size_t i = 0; i < path.size(); ++i) write_zigzag(out, path[i]);
}

}  // namespace pipehost::protobuf
