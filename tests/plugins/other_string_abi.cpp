// A plugin of this ABI version and standard library release, but built with the old
// std::string (-D_GLIBCXX_USE_CXX11_ABI=0): the host must refuse it before calling
// anything else in it, as every std::string crossing would be read with another layout.
#include <cstdint>
#include <cstdlib>

#include <pipehost/abi.hpp>

extern "C" __attribute__((visibility("default"))) std::uint32_t pipehost_abi_version() noexcept {
  return PIPEHOST_ABI_VERSION;
}
extern "C" __attribute__((visibility("default"))) const char* pipehost_build_info() noexcept {
  return "abi " PIPEHOST_STRINGIFY(PIPEHOST_ABI_VERSION) ", libstdc++ " PIPEHOST_STRINGIFY(
      PIPEHOST_STDLIB_RELEASE) ", cxx11 string 0, debug containers 0, compiler gcc";
}
extern "C" __attribute__((visibility("default"))) const void* pipehost_plugin(const char**) noexcept {
  std::abort();  // must never be reached
}
