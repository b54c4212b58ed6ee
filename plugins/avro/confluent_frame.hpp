// The Confluent Schema Registry framing of Avro values:
//   0x00 | schema id (4 bytes, big-endian) | Avro binary of the value
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include <pipehost/status.hpp>

namespace pipehost::avro {

inline constexpr std::size_t kFrameHeaderSize = 5;

// The schema id of a framed value; throws InvalidRecord saying what is wrong.
inline std::int32_t frame_schema_id(std::string_view payload) {
  if (payload.size() < kFrameHeaderSize)
    throw InvalidRecord("payload of " + std::to_string(payload.size()) +
                        " bytes is too short for the Schema Registry framing (5 bytes of header)");
  if (payload[0] != 0)
    throw InvalidRecord("payload does not start with the Schema Registry magic byte 0 (it starts with " +
                        std::to_string(static_cast<unsigned char>(payload[0])) + ")");
  const auto* b = reinterpret_cast<const unsigned char*>(payload.data());
  const auto id = static_cast<std::int32_t>((std::uint32_t{b[1]} << 24) | (std::uint32_t{b[2]} << 16) |
                                            (std::uint32_t{b[3]} << 8) | std::uint32_t{b[4]});
  if (id <= 0)  // not asked of the registry: one HTTP call per such record
    throw InvalidRecord("schema id " + std::to_string(id) + " is not one a registry gives (they start at 1)");
  return id;
}

inline void write_frame_header(std::string& out, std::int32_t schema_id) {
  const auto id = static_cast<std::uint32_t>(schema_id);
  out.push_back('\0');
  out.push_back(static_cast<char>(id >> 24));
  out.push_back(static_cast<char>(id >> 16));
  out.push_back(static_cast<char>(id >> 8));
  out.push_back(static_cast<char>(id));
}

}  // namespace pipehost::avro
