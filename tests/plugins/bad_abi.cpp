// A plugin built against ABI 1, the SDK before typed options and spans: the host must
// refuse it before calling anything else in it.
#include <cstdint>
#include <cstdlib>

extern "C" __attribute__((visibility("default"))) std::uint32_t pipehost_abi_version() noexcept {
  return 1;
}
extern "C" __attribute__((visibility("default"))) const char* pipehost_build_info() noexcept {
  return "abi 1, libstdc++ 12, compiler gcc 12";
}
extern "C" __attribute__((visibility("default"))) const void* pipehost_plugin(const char**) noexcept {
  std::abort();  // must never be reached
}
