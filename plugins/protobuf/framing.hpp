// The Confluent Schema Registry wire format for protobuf values:
//   0x00 | schema id (4 bytes, big-endian) | message-index path | message bytes
// The path is zig-zag varints: a count, then that many indexes; count 0 means [0].
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pipehost::protobuf {

// Which message of the schema's file a value holds: [i] is the i-th top-level message,
// [i, j] the j-th type nested in it, and so on. Kept inline: no allocation per record.
class MessagePath {
 public:
  static constexpr std::size_t kMaxDepth = 16;
  MessagePath() { push(0); }  // [0], the first message of the file
  static MessagePath empty() {
    MessagePath p;
    p.size_ = 0;
    return p;
  }
  void push(std::int32_t index) { indexes_[size_++] = index; }
  bool full() const { return size_ == kMaxDepth; }
  std::size_t size() const { return size_; }
  std::int32_t operator[](std::size_t i) const { return indexes_[i]; }
  bool is_first() const { return size_ == 1 && indexes_[0] == 0; }
  bool operator==(const MessagePath& o) const {
    if (size_ != o.size_) return false;
    for (std::size_t i = 0; i < size_; ++i)
      if (indexes_[i] != o.indexes_[i]) return false;
    return true;
  }
  std::string to_string() const;  // "[0, 1]"

 private:
  std::array<std::int32_t, kMaxDepth> indexes_{};
  std::size_t size_ = 0;
};

struct FrameHeader {
  std::int32_t schema_id = 0;
  MessagePath path;
  std::size_t size = 0;  // bytes of header; the message starts at payload[size]
};

// Reads the header of a framed value. Throws pipehost::InvalidRecord saying what is wrong.
FrameHeader parse_frame(std::string_view payload);
// The schema id of a payload with Confluent's magic byte and a whole id (0 otherwise),
// whatever follows it.
std::int32_t frame_schema_id(std::string_view payload);

// Appends the header; [0] is written in its short form (a single 0x00).
void write_frame(std::string& out, std::int32_t schema_id, const MessagePath& path);

}  // namespace pipehost::protobuf
