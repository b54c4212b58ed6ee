// The three symbols every plugin exports. The host reads pipehost_abi_version and
// pipehost_build_info (plain C types) before it touches pipehost_plugin.
#pragma once
#include <exception>
#include <string>

#define PIPEHOST_PLUGIN(describe_fn)                                                   \
  extern "C" PIPEHOST_EXPORT std::uint32_t pipehost_abi_version() noexcept {           \
    return PIPEHOST_ABI_VERSION;                                                       \
  }                                                                                    \
  extern "C" PIPEHOST_EXPORT const char* pipehost_build_info() noexcept {              \
    return PIPEHOST_BUILD_INFO;                                                        \
  }                                                                                    \
  extern "C" PIPEHOST_EXPORT const ::pipehost::PluginSpec* pipehost_plugin(            \
      const char** error) noexcept {                                                   \
    try {                                                                              \
      static const ::pipehost::PluginSpec spec = describe_fn();                        \
      return &spec;                                                                    \
    } catch (const std::exception& e) {                                                \
      static std::string message;                                                      \
      message = e.what();                                                              \
      *error = message.c_str();                                                        \
    } catch (...) {                                                                    \
      *error = "unknown exception while describing the plugin";                        \
    }                                                                                  \
    return nullptr;                                                                    \
  }
