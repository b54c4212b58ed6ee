// What the config builder needs to know of the loaded plugins.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "pipehost/plugin.hpp"

namespace pipehost::host {

class ComponentCatalog {
 public:
  virtual ~ComponentCatalog() = default;
  virtual const ComponentSpec* find(std::string_view name, Kind kind) const = 0;
  virtual std::vector<std::string> names(Kind kind) const = 0;
  // Why a component of that name may be missing (a library that was refused), or "".
  virtual std::string explain_missing(std::string_view name) const = 0;
};

}  // namespace pipehost::host
