#include "json_value.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <ctime>

namespace pipehost::file {
namespace {

void append_string(std::string_view s, std::string& out) {
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

void append_base64(std::string_view bytes, std::string& out) {
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

void append_timestamp(const Timestamp& t, std::string& out) {
  std::int64_t seconds = t.micros_since_epoch / 1000000;
  std::int64_t micros = t.micros_since_epoch % 1000000;
  if (micros < 0) {
    micros += 1000000;
    seconds -= 1;
  }
  std::time_t tt = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "\"%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ\"", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(micros));
  out += buf;
}

}  // namespace

void append_json(const Value& value, std::string& out) {
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
          }
        } else if constexpr (std::is_same_v<T, std::string>) append_string(v, out);
        else if constexpr (std::is_same_v<T, Bytes>) append_base64(v.data, out);
        else if constexpr (std::is_same_v<T, Timestamp>) append_timestamp(v, out);
        else if constexpr (std::is_same_v<T, List>) {
          out += '[';
          for (std::size_t i = 0; i < v.size(); ++i) {
            if (i) out += ',';
            append_json(v[i], out);
          }
          out += ']';
        } else if constexpr (std::is_same_v<T, Struct>) {
          out += '{';
          for (std::size_t i = 0; i < v.fields.size(); ++i) {
            if (i) out += ',';
            append_string(v.schema ? v.schema->names()[i] : std::to_string(i), out);
            out += ':';
            append_json(v.fields[i], out);
          }
          out += '}';
        }
      },
      value.variant());
}

}  // namespace pipehost::file
