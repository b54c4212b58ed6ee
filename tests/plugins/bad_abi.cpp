// A library that claims to be a plugin built against another ABI version: the host
// must refuse it before calling anything else in it.
#include <cstdint>
#include <cstdlib>

extern "C" __attribute__((visibility("default"))) std::uint32_t pipehost_abi_version() noexcept {
  return 999;
}
extern "C" __attribute__((visibility("default"))) const char* pipehost_build_info() noexcept {
  return "abi 999, libstdc++ 12, compiler test";
}
extern "C" __attribute__((visibility("default"))) const void* pipehost_plugin(const char**) noexcept {
  std::abort();  // must never be reached
}
