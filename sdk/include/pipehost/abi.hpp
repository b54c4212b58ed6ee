// The plugin ABI contract. Every plugin exports the version it was built against;
// the host refuses a plugin whose version differs before any C++ object crosses.
#pragma once
#include <cstdint>

// Bump on any change to a header under sdk/include that alters a type's layout or a
// virtual table. tests/unit/abi_lock_test.cpp checks sdk/abi.lock: the headers' hash, and
// a fingerprint of the boundary types' sizes and the virtual functions, which must not
// change without a bump.
#define PIPEHOST_ABI_VERSION 8u

#define PIPEHOST_STRINGIFY_INNER(x) #x
#define PIPEHOST_STRINGIFY(x) PIPEHOST_STRINGIFY_INNER(x)

// What the plugin was compiled with; the host shows it when it refuses a plugin and
// requires the same C++ standard library major release (std types cross the boundary).
#if defined(_GLIBCXX_RELEASE)
#define PIPEHOST_STDLIB_RELEASE _GLIBCXX_RELEASE
#else
#define PIPEHOST_STDLIB_RELEASE 0
#endif
// The standard library's layouts, which its release alone does not fix: std::string's
// (-D_GLIBCXX_USE_CXX11_ABI=0, as some prebuilt libraries need) and its debug mode's
// containers (-D_GLIBCXX_DEBUG).
#if defined(_GLIBCXX_USE_CXX11_ABI)
#define PIPEHOST_STDLIB_CXX11 _GLIBCXX_USE_CXX11_ABI
#else
#define PIPEHOST_STDLIB_CXX11 1
#endif
#if defined(_GLIBCXX_DEBUG)
#define PIPEHOST_STDLIB_DEBUG 1
#else
#define PIPEHOST_STDLIB_DEBUG 0
#endif
#define PIPEHOST_STDLIB_LAYOUT \
  "cxx11 string " PIPEHOST_STRINGIFY(PIPEHOST_STDLIB_CXX11) ", debug containers " PIPEHOST_STRINGIFY(PIPEHOST_STDLIB_DEBUG)
#define PIPEHOST_BUILD_INFO \
  "abi " PIPEHOST_STRINGIFY(PIPEHOST_ABI_VERSION) ", libstdc++ " PIPEHOST_STRINGIFY(PIPEHOST_STDLIB_RELEASE) \
  ", " PIPEHOST_STDLIB_LAYOUT ", compiler " __VERSION__

#define PIPEHOST_EXPORT __attribute__((visibility("default")))
