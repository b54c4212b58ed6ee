// file sink: JSON and raw lines, keys and headers, one shared file for several tasks,
// and a path that cannot be opened named at start.
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <pipehost/testing.hpp>

#include "file_sink.hpp"

using namespace pipehost;
using pipehost::testing::StageHarness;

namespace {

std::string temp_path(const char* name) {
  auto dir = std::filesystem::temp_directory_path() / ("pipehost-file-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = dir / name;
  std::filesystem::remove(path);
  return path.string();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Batch two_records() {
  Batch b;
  auto schema = StructSchema::make({"name", "n"});
  for (int i = 0; i < 2; ++i) {
    Record& r = b.records.emplace_back();
    r.key = std::string("k") + std::to_string(i);
    r.payload = std::string("raw-") + std::to_string(i);
    r.headers.push_back({"h", "v\"" + std::to_string(i)});
    r.value = Struct{schema, {Value("a\"b"), Value(std::int64_t{i})}};
  }
  return b;
}

}  // namespace

TEST_CASE("file: one JSON line per record, with the key and headers when asked") {
  const std::string path = temp_path("json.jsonl");
  StageHarness<file::FileSink> h({{"path", path}, {"with_key", true}, {"with_headers", true}});
  h->start();
  Batch b = two_records();
  b.records.emplace_back().key.borrow_null();  // no key at all
  b.records.emplace_back().key = "";            // an empty one
  auto result = h.write(b);
  CHECK(result.status.is_ok());
  h->stop();
  CHECK(slurp(path) ==
        "{\"value\":{\"name\":\"a\\\"b\",\"n\":0},\"key\":\"k0\",\"headers\":{\"h\":\"v\\\"0\"}}\n"
        "{\"value\":{\"name\":\"a\\\"b\",\"n\":1},\"key\":\"k1\",\"headers\":{\"h\":\"v\\\"1\"}}\n"
        "{\"value\":null,\"key\":null,\"headers\":{}}\n"
        "{\"value\":null,\"key\":\"\",\"headers\":{}}\n");
}

TEST_CASE("file: raw payloads, key and a tab first when asked; appended, never truncated") {
  const std::string path = temp_path("raw.txt");
  for (int run = 0; run < 2; ++run) {
    StageHarness<file::FileSink> h({{"path", path}, {"format", std::string("raw")}, {"with_key", true}});
    h->start();
    Batch b = two_records();
    CHECK(h.write(b).status.is_ok());
    h->stop();
  }
  CHECK(slurp(path) == "k0\traw-0\nk1\traw-1\nk0\traw-0\nk1\traw-1\n");
}

TEST_CASE("file: tasks writing one path share one file; lines of a batch stay together") {
  const std::string path = temp_path("shared.txt");
  StageHarness<file::FileSink> a({{"path", path}, {"format", std::string("raw")}});
  StageHarness<file::FileSink> b({{"path", path}, {"format", std::string("raw")}});
  a->start();
  b->start();
  Batch x = two_records(), y = two_records();
  CHECK(a.write(x).status.is_ok());
  CHECK(b.write(y).status.is_ok());
  a->stop();
  b->stop();
  CHECK(slurp(path) == "raw-0\nraw-1\nraw-0\nraw-1\n");
}

TEST_CASE("file: a path that cannot be opened is named at start; options are checked") {
  StageHarness<file::FileSink> h({{"path", std::string("/tmp")}});  // a folder
  CHECK_THROWS_WITH_AS(h->start(), "cannot open /tmp for appending: Is a directory", FatalError);
  CHECK(StageHarness<file::FileSink>::problems({{"path", std::string("/nonexistent-dir/out.txt")}}) ==
        std::vector<std::string>{"option 'path': folder /nonexistent-dir does not exist: create it, or give a "
                                 "path in an existing folder"});
  CHECK(StageHarness<file::FileSink>::problems({{"path", std::string("out.txt")}}).empty());
  CHECK(StageHarness<file::FileSink>::problems({{"path", std::string("-")}}).empty());
  CHECK(StageHarness<file::FileSink>::problems({{"path", std::string("x")}, {"format", std::string("xml")}})
            .size() == 1);
  CHECK(StageHarness<file::FileSink>::problems({}) == std::vector<std::string>{"option 'path' is required"});
}
