// Keeping credentials out of logs, errors and the admin API: a URL's password and the
// values of properties named like secrets are replaced by "***" wherever they are shown.
#pragma once
#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

namespace pipehost::redact {

// The values of password parameters: libpq's key=value form ("host=db password=s3cret",
// quoted values too) and a URL's query ("postgresql://db/app?password=s3cret"); any
// keyword ending in "password" (sslpassword). Used by url().
inline std::string password_parameters(std::string out) {
  std::string lower(out);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  std::size_t pos = 0;
  while ((pos = lower.find("password", pos)) != std::string::npos) {
    std::size_t keyword = pos;
    while (keyword > 0 && std::isalpha(static_cast<unsigned char>(lower[keyword - 1]))) --keyword;
    std::size_t eq = pos + 8;
    while (eq < lower.size() && space(lower[eq])) ++eq;
    const bool parameter = keyword == 0 || space(lower[keyword - 1]) || lower[keyword - 1] == '?' ||
                           lower[keyword - 1] == '&';
    if (!parameter || eq >= lower.size() || lower[eq] != '=') {
      pos += 8;
      continue;
    }
    std::size_t value = eq + 1;
    while (value < out.size() && space(out[value])) ++value;
    std::size_t end = value;
    if (end < out.size() && out[end] == '\'') {
      for (++end; end < out.size() && out[end] != '\''; ++end)
        if (out[end] == '\\') ++end;
      end = std::min(end + 1, out.size());
    } else {
      while (end < out.size() && !space(out[end]) && out[end] != '&' && out[end] != '#') ++end;
    }
    out.replace(value, end - value, "***");
    lower.replace(value, end - value, "***");
    pos = value + 3;
  }
  return out;
}

// "redis://user:pw@host:6379/0" -> "redis://user:***@host:6379/0". A lone userinfo
// with no ':' is a user name for databases ("postgresql://postgres@host") and a secret
// elsewhere ("https://token@host", and "redis://secret@host", a password for Redis's
// default user). The last '@' ends the userinfo: a password may hold '/' unencoded.
// Password parameters are hidden too (password_parameters). Other text is returned as is.
inline std::string url(std::string_view text) {
  std::string out = password_parameters(std::string(text));
  auto scheme = out.find("://");
  std::size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  auto end = out.find_first_of("?#", start);
  auto at = out.rfind('@', end == std::string::npos ? out.size() : end);
  if (at == std::string::npos || at < start) return out;
  auto colon = out.find(':', start);
  if (colon == std::string::npos || colon > at) {
    const std::string_view name = std::string_view(out).substr(0, scheme == std::string::npos ? 0 : scheme);
    for (std::string_view db : {"postgresql", "postgres", "mysql"})
      if (name == db) return out;
    out.replace(start, at - start, "***");
    return out;
  }
  out.replace(colon + 1, at - colon - 1, "***");
  return out;
}

// Whether a property's value is a secret: its name says password, secret, key (but not
// a file location), token or credential, in any case (sasl.password, ssl.key.password,
// basic.auth.user.info, sasl.oauthbearer.client.secret ...).
inline bool is_secret_name(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto has = [&](std::string_view word) { return lower.find(word) != std::string::npos; };
  if (has("location") || has("file") || has("path")) return false;
  return has("password") || has("secret") || has("key") || has("token") || has("credential") ||
         has("user.info") || has("sasl.jaas");
}

// The value as it may be shown: "***" for secrets, URLs without their password.
inline std::string value(std::string_view name, std::string_view text) {
  return is_secret_name(name) ? std::string("***") : url(text);
}

}  // namespace pipehost::redact
