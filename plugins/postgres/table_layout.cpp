#include "table_layout.hpp"

#include <cctype>
#include <climits>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>

#include <pipehost/json.hpp>
#include <pipehost/time.hpp>

namespace pipehost::postgres {
namespace {

// COPY's text format: backslash escapes for the characters that separate fields/rows.
void append_escaped(std::string_view s, std::string& out) {
  for (char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out += c;
    }
  }
}

std::string kind_of(const Value& v) {
  if (v.is<std::string>()) return "a string";
  if (v.is<std::int64_t>()) return "an integer";
  if (v.is<double>()) return "a number";
  if (v.is<bool>()) return "a boolean";
  if (v.is<Timestamp>()) return "a timestamp";
  if (v.is<Bytes>()) return "bytes";
  if (v.is<List>()) return "a list";
  return "a struct";
}

// A time text as PostgreSQL reads it for a column of `type`: RFC 3339, or a date alone
// ("2024-03-01", midnight). timestamptz takes the instant (an offset moves it to UTC);
// timestamp and date the wall time and date as written, offset aside, as PostgreSQL's
// own input does ('2024-03-01T00:30:00+01:00'::date is 2024-03-01). Microseconds since
// the epoch of that instant or wall time; nullopt: not such a text.
std::optional<std::int64_t> time_of_text(const std::string& s, ColumnType type) {
  // PostgreSQL keeps microseconds and rounds what is finer (.1234565 is .123457); a date
  // is the date written, its time of day aside.
  auto micros = [type](const std::optional<time::Parsed>& p) -> std::optional<std::int64_t> {
    if (!p) return std::nullopt;
    return p->micros_since_epoch + (type != ColumnType::date && p->dropped_nanos >= 500 ? 1 : 0);
  };
  if (s.size() == 10) return micros(time::parse_rfc3339(s + "T00:00:00Z"));
  auto parsed = time::parse_rfc3339(s);
  if (!parsed || type == ColumnType::timestamptz) return micros(parsed);
  const std::size_t zone = s.find_first_of("Z+-", 19);  // valid RFC 3339: the offset's start
  return micros(time::parse_rfc3339(s.substr(0, zone) + "Z"));
}

// PostgreSQL's numeric input: digits with an optional sign, point and exponent, or NaN /
// Infinity. Anything else would fail the batch's COPY instead of one record.
bool numeric_text(std::string_view s) {
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  const std::string_view rest = s.substr(i);
  if (rest == "NaN" || rest == "Infinity" || rest == "inf") return true;
  std::size_t digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    std::size_t exponent = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++exponent;
    if (exponent == 0) return false;
  }
  return i == s.size();
}

// 32 hex digits, hyphens and braces aside: what PostgreSQL's uuid input can take at most.
bool uuid_text(std::string_view s) {
  std::size_t hex = 0;
  for (char c : s) {
    if (std::isxdigit(static_cast<unsigned char>(c))) ++hex;
    else if (c != '-' && c != '{' && c != '}') return false;
  }
  return hex == 32;
}

}  // namespace

std::optional<ColumnType> column_type(const std::string& udt) {
  static const std::map<std::string, ColumnType> kTypes = {
      {"text", ColumnType::text},          {"varchar", ColumnType::text},
      {"bpchar", ColumnType::text},        {"name", ColumnType::text},
      {"int2", ColumnType::integer},       {"int4", ColumnType::integer},
      {"int8", ColumnType::integer},       {"float4", ColumnType::floating},
      {"float8", ColumnType::floating},    {"numeric", ColumnType::numeric},
      {"bool", ColumnType::boolean},       {"timestamptz", ColumnType::timestamptz},
      {"timestamp", ColumnType::timestamp}, {"date", ColumnType::date},
      {"json", ColumnType::json},          {"jsonb", ColumnType::json},
      {"bytea", ColumnType::bytea},        {"uuid", ColumnType::uuid},
  };
  auto it = kTypes.find(udt);
  if (it == kTypes.end()) return std::nullopt;
  return it->second;
}

std::string append_copy_text(const Column& column, const Value& v, std::string& out) {
  if (v.is_null()) {
    if (column.not_null)
      return "field '" + column.field + "' is missing, and column " + column.name + " is NOT NULL";
    out += "\\N";
    return "";
  }
  auto refuse = [&] {
    return "field '" + column.field + "' is " + kind_of(v) + ", which column " + column.name +
           " (" + column.type_name + ") cannot take";
  };
  switch (column.type) {
    case ColumnType::text:
    case ColumnType::uuid: {
      if (v.is<List>() || v.is<Struct>() || v.is<Bytes>()) return refuse();
      // A timestamp as RFC 3339 text, as the sqlite sink and JSON write it (to_text gives
      // its microseconds).
      const auto* ts = v.as<Timestamp>();
      const std::string text = ts ? time::format_rfc3339(ts->micros_since_epoch) : v.to_text();
      if (text.find('\0') != std::string::npos)
        return "field '" + column.field + "' holds a NUL character, which PostgreSQL text cannot store";
      if (column.type == ColumnType::uuid && !uuid_text(text))
        return "field '" + column.field + "' is not a UUID for column " + column.name;
      append_escaped(text, out);
      return "";
    }
    case ColumnType::integer: {
      const auto* n = v.as<std::int64_t>();
      if (!n) return refuse();
      const bool fits = column.type_name == "int2"   ? *n >= -32768 && *n <= 32767
                        : column.type_name == "int4" ? *n >= INT32_MIN && *n <= INT32_MAX
                                                     : true;
      if (!fits) return "field '" + column.field + "' is " + v.to_text() + ", out of range for column " +
                        column.name + " (" + column.type_name + ")";
      out += v.to_text();
      return "";
    }
    case ColumnType::floating:
    case ColumnType::numeric:
      if (const auto* d = v.as<double>(); d && !std::isfinite(*d) && column.type == ColumnType::numeric)
        return "field '" + column.field + "' is not a finite number";
      if (v.is<std::int64_t>() || v.is<double>()) {
        out += v.to_text();
        return "";
      }
      if (const auto* s = v.as<std::string>(); s && column.type == ColumnType::numeric && numeric_text(*s)) {
        out += *s;
        return "";
      }
      return refuse();
    case ColumnType::boolean:
      if (!v.is<bool>()) return refuse();
      out += *v.as<bool>() ? "t" : "f";
      return "";
    case ColumnType::timestamptz:
    case ColumnType::timestamp:
    case ColumnType::date: {
      std::int64_t micros = 0;
      if (const auto* t = v.as<Timestamp>()) {
        micros = t->micros_since_epoch;
      } else if (const auto* s = v.as<std::string>()) {
        auto parsed = time_of_text(*s, column.type);
        if (!parsed)
          return "field '" + column.field + "' is \"" + s->substr(0, 40) + "\", not an RFC 3339 timestamp" +
                 (column.type == ColumnType::date ? " or a date (2024-03-01)" : "") + " for column " + column.name;
        micros = *parsed;
      } else {
        return refuse();
      }
      // Years 1-9999: what RFC 3339 text can say (PostgreSQL's range is wider, ours is not).
      if (micros < -62135596800000000 || micros > 253402300799999999)
        return "field '" + column.field + "' is a time outside years 1-9999 (column " + column.name + ")";
      std::string text = time::format_rfc3339(micros);  // "Z": UTC, or the wall time as written
      if (column.type == ColumnType::timestamp) text.pop_back();
      if (column.type == ColumnType::date) text.resize(10);
      out += text;
      return "";
    }
    case ColumnType::json: {
      std::string text;
      json::append(v, text);
      if (column.type_name == "jsonb" && text.find("\\u0000") != std::string::npos)
        return "field '" + column.field + "' holds a NUL character, which jsonb cannot store";
      append_escaped(text, out);
      return "";
    }
    case ColumnType::bytea: {
      std::string_view bytes;
      if (const auto* b = v.as<Bytes>()) bytes = b->data;
      else if (const auto* s = v.as<std::string>()) bytes = *s;
      else return refuse();
      static const char* hex = "0123456789abcdef";
      out += "\\\\x";
      for (unsigned char c : bytes) {
        out += hex[c >> 4];
        out += hex[c & 15];
      }
      return "";
    }
  }
  return refuse();
}

}  // namespace pipehost::postgres
