// The plugin ABI version must change whenever the SDK's layout does. sdk/abi.lock records
// the version, a hash of the headers' text and a fingerprint of their layout: the sizes
// and alignments of the types that cross the plugin boundary and every virtual function
// declaration in order (vtable slots). A text change (comments, inline helpers) only asks
// for the lock to be rewritten; a layout change also asks for PIPEHOST_ABI_VERSION to be
// bumped past the lock's, so an unchanged version cannot pass with another layout.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "pipehost/sdk.hpp"

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> sdk_headers() {
  std::vector<fs::path> headers;
  for (const auto& e :
       fs::recursive_directory_iterator(fs::path(PIPEHOST_SOURCE_DIR) / "sdk/include/pipehost"))
    if (e.is_regular_file() && e.path().filename() != "testing.hpp") headers.push_back(e.path());
  std::sort(headers.begin(), headers.end());
  return headers;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

std::string header_name(const fs::path& p) {
  return fs::relative(p, fs::path(PIPEHOST_SOURCE_DIR) / "sdk/include").string();
}

std::uint64_t fnv1a(const std::string& text, std::uint64_t h = 1469598103934665603ULL) {
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ULL;
  return h;
}

std::string hex(std::uint64_t h) {
  std::ostringstream out;
  out << std::hex << h;
  return out.str();
}

std::uint64_t text_hash() {
  std::uint64_t h = 1469598103934665603ULL;
  for (const auto& p : sdk_headers()) h = fnv1a(header_name(p) + "\n" + read(p), h);
  return h;
}

#define PIPEHOST_LAYOUT_OF(T) out << #T << ' ' << sizeof(T) << ' ' << alignof(T) << '\n'

std::uint64_t layout_hash() {
  std::ostringstream out;
  using namespace pipehost;
  PIPEHOST_LAYOUT_OF(Blob);
  PIPEHOST_LAYOUT_OF(Header);
  PIPEHOST_LAYOUT_OF(Origin);
  PIPEHOST_LAYOUT_OF(Span);
  PIPEHOST_LAYOUT_OF(Position);
  PIPEHOST_LAYOUT_OF(Record);
  PIPEHOST_LAYOUT_OF(Rejection);
  PIPEHOST_LAYOUT_OF(Batch);
  PIPEHOST_LAYOUT_OF(Value);
  PIPEHOST_LAYOUT_OF(StructSchema);
  PIPEHOST_LAYOUT_OF(Struct);
  PIPEHOST_LAYOUT_OF(Bytes);
  PIPEHOST_LAYOUT_OF(Timestamp);
  PIPEHOST_LAYOUT_OF(Status);
  PIPEHOST_LAYOUT_OF(Counter);
  PIPEHOST_LAYOUT_OF(Gauge);
  PIPEHOST_LAYOUT_OF(SchemaReference);
  PIPEHOST_LAYOUT_OF(RegisteredSchema);
  PIPEHOST_LAYOUT_OF(OptionSpec);
  PIPEHOST_LAYOUT_OF(Options);
  PIPEHOST_LAYOUT_OF(ComponentSpec);
  PIPEHOST_LAYOUT_OF(PluginSpec);
  PIPEHOST_LAYOUT_OF(HttpRequest);
  PIPEHOST_LAYOUT_OF(HttpResponse);
  // Virtual functions in declaration order, comments and spacing aside: their slots.
  const std::regex comment("//.*"), spaces("\\s+");
  for (const auto& p : sdk_headers()) {
    std::istringstream lines(read(p));
    std::string line, declaration;
    while (std::getline(lines, line)) {
      line = std::regex_replace(line, comment, "");
      if (declaration.empty() && line.find("virtual ") == std::string::npos) continue;
      declaration += line + " ";
      if (line.find_first_of(";{") == std::string::npos) continue;  // continues on the next line
      out << header_name(p) << ": " << std::regex_replace(declaration, spaces, " ") << '\n';
      declaration.clear();
    }
  }
  return fnv1a(out.str());
}

}  // namespace

TEST_CASE("sdk/abi.lock matches the SDK headers, their layout and PIPEHOST_ABI_VERSION") {
  std::ifstream lock(fs::path(PIPEHOST_SOURCE_DIR) / "sdk/abi.lock");
  unsigned version = 0;
  std::string text, layout;
  lock >> version >> text >> layout;
  const std::string text_now = hex(text_hash()), layout_now = hex(layout_hash());
  const std::string rewrite = "write sdk/abi.lock as: " + std::to_string(PIPEHOST_ABI_VERSION) + " " +
                              text_now + " " + layout_now;
  if (layout != layout_now) {
    INFO("The SDK's layout changed (a type's size, or a virtual function added, removed, "
         "reordered or changed) since ABI version " << version << ": plugins built before "
         "would crash the host. Bump PIPEHOST_ABI_VERSION in sdk/include/pipehost/abi.hpp past "
         << version << ", then " << rewrite);
    CHECK(PIPEHOST_ABI_VERSION > version);
    CHECK(layout == layout_now);
  } else {
    INFO("The SDK headers' text changed, not their layout: " << rewrite);
    CHECK(version == PIPEHOST_ABI_VERSION);
    CHECK(text == text_now);
  }
}
