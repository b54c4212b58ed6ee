// UTF-8 validation for decoders: a string field holding invalid UTF-8 is a bad record
// (protobuf's and Avro's own parsers refuse it, and text columns downstream would too).
// And cutting text to a byte limit without splitting a character, for messages.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace pipehost::utf8 {

// True when `s` is well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
inline bool valid(std::string_view s) {
  constexpr std::uint64_t kHigh = 0x8080808080808080ull;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char* end = p + s.size();
  if (s.size() >= 8) {  // all ASCII, the common case: words, the last one overlapping
    std::uint64_t chunk;
    for (; end - p > 8; p += 8) {
      std::memcpy(&chunk, p, 8);
      if (chunk & kHigh) break;
    }
    if (end - p <= 8) {
      std::memcpy(&chunk, end - 8, 8);
      if ((chunk & kHigh) == 0) return true;
    }
  }
  while (p < end) {  // from the first word holding a non-ASCII byte
    if (end - p >= 8) {  // ASCII runs, 8 bytes at a time
      std::uint64_t chunk;
      std::memcpy(&chunk, p, 8);
      if ((chunk & kHigh) == 0) {
        p += 8;
        continue;
      }
    }
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int extra;
    std::uint32_t code;
    if (c >= 0xc2 && c <= 0xdf) extra = 1, code = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) extra = 2, code = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) extra = 3, code = c & 0x07;
    else return false;
    if (end - p <= extra) return false;
    for (int i = 1; i <= extra; ++i) {
      if ((p[i] & 0xc0) != 0x80) return false;
      code = (code << 6) | (p[i] & 0x3f);
    }
    if ((extra == 2 && (code < 0x800 || (code >= 0xd800 && code <= 0xdfff))) ||
        (extra == 3 && (code < 0x10000 || code > 0x10ffff)))
      return false;
    p += extra + 1;
  }
  return true;
}

// The longest start of `s` of at most `most` bytes that does not end inside a UTF-8
// sequence (bytes 10xxxxxx continue one).
inline std::string_view prefix(std::string_view s, std::size_t most) {
  if (s.size() <= most) return s;
  std::size_t cut = most;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut);
}

// `s` when it has at most `most` bytes, else its start and "..." in at most `most`
// bytes: for showing a value inside an error message.
inline std::string abbreviated(std::string_view s, std::size_t most) {
  if (s.size() <= most) return std::string(s);
  return std::string(prefix(s, most < 3 ? 0 : most - 3)) + "...";
}

}  // namespace pipehost::utf8
