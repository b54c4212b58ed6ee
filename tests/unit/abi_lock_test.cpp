// The plugin ABI version must change whenever the SDK headers do: this test hashes the
// headers and compares with sdk/abi.lock, which records the version and the hash.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "pipehost/abi.hpp"

namespace fs = std::filesystem;

namespace {
std::uint64_t sdk_hash() {
  std::vector<fs::path> headers;
  for (const auto& e :
       fs::recursive_directory_iterator(fs::path(PIPEHOST_SOURCE_DIR) / "sdk/include/pipehost"))
    if (e.is_regular_file() && e.path().filename() != "testing.hpp") headers.push_back(e.path());
  std::sort(headers.begin(), headers.end());
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (const auto& p : headers) {
    std::ifstream in(p, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    text = fs::relative(p, fs::path(PIPEHOST_SOURCE_DIR) / "sdk/include").string() + "\n" + text;
    for (unsigned char c : text) h = (h ^ c) * 1099511628211ULL;
  }
  return h;
}
}  // namespace

TEST_CASE("sdk/abi.lock matches the SDK headers and PIPEHOST_ABI_VERSION") {
  std::ifstream lock(fs::path(PIPEHOST_SOURCE_DIR) / "sdk/abi.lock");
  unsigned version = 0;
  std::string hash;
  lock >> version >> hash;
  std::ostringstream now;
  now << std::hex << sdk_hash();
  INFO("The SDK headers changed. If the change alters a type or a virtual table, bump "
       "PIPEHOST_ABI_VERSION in sdk/include/pipehost/abi.hpp. Then write sdk/abi.lock as: "
       << PIPEHOST_ABI_VERSION << " " << now.str());
  CHECK(version == PIPEHOST_ABI_VERSION);
  CHECK(hash == now.str());
}
