// What the harnesses share. A harness returns normally for input its parser accepts or
// rejects the documented way; anything else aborts, so libFuzzer keeps the input.
#pragma once
#include <cxxabi.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <typeinfo>

namespace pipehost::fuzz {

// Call from a catch (...) block: names the exception that escaped and aborts.
[[noreturn]] inline void undocumented_exception(const char* call) {
  try {
    throw;
  } catch (const std::exception& e) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> type(
        abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status), std::free);
    std::fprintf(stderr, "%s threw an undocumented %s: %s\n", call,
                 type ? type.get() : typeid(e).name(), e.what());
  } catch (...) {
    std::fprintf(stderr, "%s threw something that is not a std::exception\n", call);
  }
  std::abort();
}

}  // namespace pipehost::fuzz

// An invariant beyond "does not crash".
#define FUZZ_CHECK(condition)                                                            \
  ((condition) ? (void)0                                                                 \
               : (std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                               #condition),                                              \
                  std::abort()))
