// Reads config files into one TOML document: files merged in order, then the
// environment overlay, then --set overrides, then ${VAR} interpolation.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "config/diagnostics.hpp"

namespace pipehost::host {

struct LoadRequest {
  std::vector<std::string> files;
  std::string env;                // overlay name: <dir of first file>/env/<env>.toml
  std::vector<std::string> sets;  // "pipeline.NAME.KEY=VALUE" (any dotted path works)
};

// nullptr when a file cannot be read or parsed; the reasons are in `diagnostics`.
std::shared_ptr<toml::table> load_document(const LoadRequest& request, Diagnostics& diagnostics);

// Replaces ${VAR} and ${VAR:-default} in every string value; "$$" is a literal "$".
void interpolate(toml::table& document, Diagnostics& diagnostics, const std::string& first_file = "");

// Deep merge: tables merge key by key, anything else in `overlay` replaces.
void merge_into(toml::table& base, toml::table&& overlay);

}  // namespace pipehost::host
