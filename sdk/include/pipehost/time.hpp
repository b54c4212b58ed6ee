// RFC 3339 timestamps ("2024-05-01T12:34:56.123456789Z", "...+02:00"), as JSON carries
// them: parsing to microseconds since the epoch (nanoseconds below a microsecond are
// truncated, and counted so a caller can say so) and formatting back, always UTC.
#pragma once
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace pipehost::time {

struct Parsed {
  std::int64_t micros_since_epoch = 0;
  int dropped_nanos = 0;  // the digits past microseconds, as nanoseconds (0..999)
};

namespace detail {
inline bool digits(std::string_view s, std::size_t at, std::size_t n, int& out) {
  if (at + n > s.size()) return false;
  out = 0;
  for (std::size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}
// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
inline std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}
// The inverse: the proleptic Gregorian date of a day since 1970-01-01.
inline void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2);
}
inline void put_digits(char* at, std::int64_t value, int n) {
  for (int i = n - 1; i >= 0; --i, value /= 10) at[i] = static_cast<char>('0' + value % 10);
}
}  // namespace detail

// "YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)", as strict as Go's encoding/json (the seed
// trade consumer's parser): 'T' and 'Z' upper case only, no space for 'T', seconds 00-59
// (no leap second), so a record the seed would refuse is refused here too.
inline std::optional<Parsed> parse_rfc3339(std::string_view s) {
  int year, month, day, hour, minute, second;
  if (!detail::digits(s, 0, 4, year) || s.size() < 20 || s[4] != '-' ||
      !detail::digits(s, 5, 2, month) || s[7] != '-' || !detail::digits(s, 8, 2, day) ||
      s[10] != 'T' || !detail::digits(s, 11, 2, hour) ||
      s[13] != ':' || !detail::digits(s, 14, 2, minute) || s[16] != ':' ||
      !detail::digits(s, 17, 2, second))
    return std::nullopt;
  static const int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1 || day > kDays[month - 1] || hour > 23 || minute > 59 ||
      second > 59)
    return std::nullopt;
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month == 2 && day == 29 && !leap) return std::nullopt;
  std::size_t at = 19;
  std::int64_t micros = 0;
  int nanos = 0, places = 0;
  if (at < s.size() && s[at] == '.') {
    ++at;
    std::size_t start = at;
    for (; at < s.size() && s[at] >= '0' && s[at] <= '9'; ++at, ++places) {
      if (places < 6) micros = micros * 10 + (s[at] - '0');
      else if (places < 9) nanos = nanos * 10 + (s[at] - '0');
    }
    if (at == start) return std::nullopt;
    for (int p = places; p < 6; ++p) micros *= 10;
    for (int p = places < 6 ? 6 : places; p < 9; ++p) nanos *= 10;
  }
  int offset_minutes = 0;
  if (at < s.size() && s[at] == 'Z') {
    ++at;
  } else if (at < s.size() && (s[at] == '+' || s[at] == '-')) {
    int oh, om;
    if (!detail::digits(s, at + 1, 2, oh) || at + 3 >= s.size() || s[at + 3] != ':' ||
        !detail::digits(s, at + 4, 2, om) || oh > 23 || om > 59)
      return std::nullopt;
    offset_minutes = (s[at] == '-' ? -1 : 1) * (oh * 60 + om);
    at += 6;
  } else {
    return std::nullopt;
  }
  if (at != s.size()) return std::nullopt;
  const std::int64_t days = detail::days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const std::int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
  return Parsed{seconds * 1000000 + micros, nanos};
}

// "2024-05-01T12:34:56.123456Z" (always six decimals, UTC). Years 0-9999 by hand: gmtime_r
// and snprintf took ~150 ns a call, twice per trade in seed 002's pipeline.
inline std::string format_rfc3339(std::int64_t micros_since_epoch) {
  std::int64_t seconds = micros_since_epoch / 1000000;
  std::int64_t micros = micros_since_epoch % 1000000;
  if (micros < 0) {
    micros += 1000000;
    seconds -= 1;
  }
  std::int64_t days = seconds / 86400, in_day = seconds % 86400;
  if (in_day < 0) {
    in_day += 86400;
    days -= 1;
  }
  std::int64_t year = 0;
  unsigned month = 0, day = 0;
  detail::civil_from_days(days, year, month, day);
  if (year >= 0 && year <= 9999) {
    std::string out = "0000-00-00T00:00:00.000000Z";
    detail::put_digits(&out[0], year, 4);
    detail::put_digits(&out[5], month, 2);
    detail::put_digits(&out[8], day, 2);
    detail::put_digits(&out[11], in_day / 3600, 2);
    detail::put_digits(&out[14], in_day / 60 % 60, 2);
    detail::put_digits(&out[17], in_day % 60, 2);
    detail::put_digits(&out[20], micros, 6);
    return out;
  }
  std::time_t tt = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(micros));
  return buf;
}

}  // namespace pipehost::time
