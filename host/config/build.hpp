// Turns a loaded TOML document into the validated Config, reporting every problem.
#pragma once
#include <memory>

#include "config/catalog.hpp"
#include "config/diagnostics.hpp"
#include "config/model.hpp"

namespace pipehost::host {

// The plugin search path the document asks for (before plugins are loaded), resolved
// against the directory of the first config file.
std::vector<std::string> plugin_path_of(const toml::table& document, const std::string& first_file);

Config build_config(std::shared_ptr<toml::table> document, const std::vector<std::string>& files,
                    const ComponentCatalog& catalog, Diagnostics& diagnostics);

}  // namespace pipehost::host
