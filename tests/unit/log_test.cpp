// Log lines as a reader trusts them: one line per event, whatever a record's value holds.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "log.hpp"
#include "pipehost/utf8.hpp"

using namespace pipehost::host;

namespace {

// What log_line writes to stderr while `emit` runs.
template <class F>
std::string captured(F emit) {
  char path[] = "/tmp/pipehost-log-test-XXXXXX";
  const int file = mkstemp(path);
  REQUIRE(file >= 0);
  std::fflush(stderr);
  const int saved = dup(2);
  dup2(file, 2);
  emit();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(file);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::remove(path);
  return text.str();
}

}  // namespace

TEST_CASE("log: a message cannot forge a line, reach a terminal, or break a JSON line") {
  const std::string forged = "field 'food' is \"x\n02:00:00.000 ERROR [pipehost] pipeline failed\x1b[2J\"";
  std::string text = captured([&] { log_line(pipehost::LogLevel::warn, "p/sink#0", forged); });
  CHECK(std::count(text.begin(), text.end(), '\n') == 1);
  CHECK(text.find("\"x\\n02:00:00.000 ERROR [pipehost] pipeline failed\\x1b[2J\"") != std::string::npos);

  const std::string cut = std::string("is \"aaa\xc3...\" and caf\xc3\xa9");  // a value cut inside a character
  text = captured([&] { log_line(pipehost::LogLevel::warn, "p/sink#0", cut); });
  CHECK(text.find("is \"aaa\\xc3...\" and caf\xc3\xa9") != std::string::npos);

  set_log_format(LogFormat::json);
  std::string json = captured([&] { log_line(pipehost::LogLevel::warn, "p/sink#0", cut + "\n"); });
  set_log_format(LogFormat::text);
  CHECK(pipehost::utf8::valid(json));
  CHECK(json.find(R"("message":"is \"aaa\\xc3...\" and café\n")") != std::string::npos);
  CHECK(std::count(json.begin(), json.end(), '\n') == 1);
}
