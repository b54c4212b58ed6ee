// Writing the neutral value as JSON: structs as objects (field order kept), lists as
// arrays, bytes as base64, timestamps as RFC 3339 strings (UTC, microseconds), doubles
// in shortest round-trip form (non-finite ones as null).
#pragma once
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>

#include "pipehost/time.hpp"
#include "pipehost/value.hpp"

namespace pipehost::json {

inline void append_string(std::string_view s, std::string& out) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

inline void append_base64(std::string_view bytes, std::string& out) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  out += '"';
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) |
                 (static_cast<unsigned char>(bytes[i + 1]) << 8) | static_cast<unsigned char>(bytes[i + 2]);
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += table[(v >> 6) & 63];
    out += table[v & 63];
  }
  if (i + 1 == bytes.size()) {
    unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8);
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += table[(v >> 6) & 63];
    out += '=';
  }
  out += '"';
}

inline void append(const Value& value, std::string& out) {
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::monostate>) out += "null";
        else if constexpr (std::is_same_v<T, bool>) out += v ? "true" : "false";
        else if constexpr (std::is_same_v<T, std::int64_t>) out += std::to_string(v);
        else if constexpr (std::is_same_v<T, double>) {
          if (!std::isfinite(v)) {
            out += "null";
          } else {
            std::array<char, 32> buf{};
            auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
            out.append(buf.data(), r.ptr);
            // A double stays a double when read back: 2500.0, not 2500 (an integer).
            if (std::find_if(buf.data(), r.ptr, [](char c) { return c == '.' || c == 'e'; }) == r.ptr)
              out += ".0";
          }
        } else if constexpr (std::is_same_v<T, std::string>) append_string(v, out);
        else if constexpr (std::is_same_v<T, Bytes>) append_base64(v.data, out);
        else if constexpr (std::is_same_v<T, Timestamp>) {
          out += '"';
          out += time::format_rfc3339(v.micros_since_epoch);
          out += '"';
        }
        else if constexpr (std::is_same_v<T, List>) {
          out += '[';
          for (std::size_t i = 0; i < v.size(); ++i) {
            if (i) out += ',';
            append(v[i], out);
          }
          out += ']';
        } else if constexpr (std::is_same_v<T, Struct>) {
          out += '{';
          for (std::size_t i = 0; i < v.fields.size(); ++i) {
            if (i) out += ',';
            append_string(v.schema ? v.schema->names()[i] : std::to_string(i), out);
            out += ':';
            append(v.fields[i], out);
          }
          out += '}';
        }
      },
      value.variant());
}

}  // namespace pipehost::json
