// The neutral value as JSON: structs as objects, lists as arrays, bytes as base64,
// timestamps as RFC 3339 strings (UTC, microseconds).
#pragma once
#include <string>

#include <pipehost/value.hpp>

namespace pipehost::file {

void append_json(const Value& value, std::string& out);

}  // namespace pipehost::file
