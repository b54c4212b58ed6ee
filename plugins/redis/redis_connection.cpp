#include "redis_connection.hpp"

#include <pipehost/redact.hpp>

#include <charconv>
#include <stdexcept>
#include <sys/time.h>

#include <pipehost/status.hpp>

namespace pipehost::redis {
namespace {

int parse_int(std::string_view text, int min, int max, std::string_view what,
              std::string_view url) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < min ||
      value > max)
    throw std::invalid_argument("redis url '" + redact::url(url) + "': " + std::string(what) +
                                " must be an integer from " + std::to_string(min) + " to " +
                                std::to_string(max));
  return value;
}

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

// "%2F" -> "/"; a '%' not followed by two hex digits is refused (the URL would mean
// something else than it says).
std::string percent_decoded(std::string_view text, std::string_view url) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    auto hex = [](char c) {
      return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    };
    const bool two_follow = i + 2 < text.size();
    const int high = two_follow ? hex(text[i + 1]) : -1;
    const int low = two_follow ? hex(text[i + 2]) : -1;
    if (high < 0 || low < 0)
      throw std::invalid_argument("redis url '" + redact::url(url) +
                                  "': a '%' in the user or password must start an escape such as %25 (for '%')");
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

}  // namespace

std::string RedisEndpoint::describe() const {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/" + std::to_string(db);
}

RedisEndpoint parse_redis_url(std::string_view url) {
  RedisEndpoint e;
  std::string_view rest = url;
  if (auto scheme = rest.find("://"); scheme != std::string_view::npos) {
    if (rest.substr(0, scheme) != "redis")
      throw std::invalid_argument("redis url '" + redact::url(url) +
                                  "': only the redis:// scheme is supported");
    rest.remove_prefix(scheme + 3);
  } else if (rest.starts_with("redis:/")) {  // "redis:/host": a slash short ("redis:6379" is a host)
    throw std::invalid_argument("redis url '" + redact::url(url) +
                                "': write redis://host:port[/db] (two slashes after redis:)");
  }
  // The last '@' ends the userinfo (a password may hold '/' or '@'); user and password
  // are percent-decoded, as redis-py and the URL rules have them ("%2F" is '/').
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      e.password = percent_decoded(userinfo, url);  // "secret@host": a password for the default user
    } else {
      e.user = percent_decoded(userinfo.substr(0, colon), url);
      e.password = percent_decoded(userinfo.substr(colon + 1), url);
    }
    rest.remove_prefix(at + 1);
  }
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) e.db = parse_int(db, 0, 1 << 20, "the database number", url);
    rest = rest.substr(0, slash);
  }
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {  // [::1]:6379
    auto close = rest.find(']');
    if (close == std::string_view::npos)
      throw std::invalid_argument("redis url '" + redact::url(url) + "': unclosed '['");
    e.host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty() && after.front() != ':')
      throw std::invalid_argument("redis url '" + redact::url(url) + "': expected ':' after ']'");
    if (!after.empty()) port = after.substr(1);
  } else if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    e.host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  } else {
    e.host = rest;
  }
  if (e.host.empty())
    throw std::invalid_argument("redis url '" + redact::url(url) + "': missing host");
  if (!port.empty() || rest.ends_with(':')) e.port = parse_int(port, 1, 65535, "the port", url);
  return e;
}

RedisConnection::RedisConnection(RedisEndpoint endpoint, std::chrono::milliseconds connect_timeout,
                                 std::chrono::milliseconds command_timeout)
    : endpoint_(std::move(endpoint)),
      connect_timeout_(connect_timeout),
      command_timeout_(command_timeout) {}

RedisConnection::~RedisConnection() { disconnect(); }

void RedisConnection::disconnect() {
  if (context_) redisFree(context_);
  context_ = nullptr;
}

void RedisConnection::fail(const std::string& what) {
  std::string detail = context_ && context_->err ? std::string(": ") + context_->errstr : "";
  disconnect();
  throw RetriableError("redis " + endpoint_.describe() + ": " + what + detail);
}

void RedisConnection::connect() {
  if (context_) return;
  context_ = redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port,
                                     to_timeval(connect_timeout_));
  if (!context_) throw RetriableError("redis: cannot allocate a connection");
  if (context_->err) fail("cannot connect");
  if (redisSetTimeout(context_, to_timeval(command_timeout_)) != REDIS_OK)
    fail("cannot set the command timeout");
  redisEnableKeepAlive(context_);
  auto check = [&](Reply reply, const char* what) {
    // An AUTH or SELECT refusal is a configuration error: retrying will not help.
    if (is_error(*reply)) {
      disconnect();
      throw FatalError("redis " + endpoint_.describe() + ": " + what + " failed: " +
                       std::string(text_of(*reply)));
    }
  };
  // A user named without a password ("redis://app:@host", a nopass ACL user) still logs
  // in as that user, not as the default one.
  if (!endpoint_.user.empty()) check(command({"AUTH", endpoint_.user, endpoint_.password}), "AUTH");
  else if (!endpoint_.password.empty()) check(command({"AUTH", endpoint_.password}), "AUTH");
  if (endpoint_.db != 0) check(command({"SELECT", std::to_string(endpoint_.db)}), "SELECT");
}

Reply RedisConnection::command(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  argv.reserve(args.size());
  lengths.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  return send(static_cast<int>(args.size()), argv.data(), lengths.data());
}

Reply RedisConnection::command(std::initializer_list<std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  for (auto a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  return send(static_cast<int>(args.size()), argv.data(), lengths.data());
}

Reply RedisConnection::send(int argc, const char** argv, const std::size_t* lengths) {
  connect();
  auto* raw = static_cast<redisReply*>(redisCommandArgv(context_, argc, argv, lengths));
  if (!raw) fail("command failed");
  return Reply(raw);
}

void RedisConnection::throw_error(const redisReply& reply, std::string_view what) {
  std::string_view text = text_of(reply);
  std::string message =
      "redis " + endpoint_.describe() + ": " + std::string(what) + ": " + std::string(text);
  for (std::string_view transient :
       {"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "READONLY", "CLUSTERDOWN", "OOM",
        "ERR max number of clients reached"}) {
    if (text.starts_with(transient)) {
      disconnect();
      throw RetriableError(message);
    }
  }
  throw FatalError(message);
}

}  // namespace pipehost::redis
