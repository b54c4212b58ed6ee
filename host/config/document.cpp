#include "config/document.hpp"

#include <algorithm>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace pipehost::host {
namespace fs = std::filesystem;

void merge_into(toml::table& base, toml::table&& overlay) {
  // Nodes are moved, not copied: a copied toml++ node loses its source location.
  for (auto&& [key, node] : overlay) {
    toml::node* existing = base.get(key.str());
    // A stage table naming a `plugin` replaces the stage whole (its options belong to
    // that plugin); any other table merges key by key.
    bool replaces_stage = node.is_table() && node.as_table()->contains("plugin");
    if (existing && existing->is_table() && node.is_table() && !replaces_stage) {
      merge_into(*existing->as_table(), std::move(*node.as_table()));
    } else if (auto* t = node.as_table()) {
      base.insert_or_assign(key, std::move(*t));
    } else if (auto* a = node.as_array()) {
      base.insert_or_assign(key, std::move(*a));
    } else {
      base.insert_or_assign(key, std::move(node));
    }
  }
}

namespace {

// What to do about a TOML syntax error the parser's words do not say: ${VAR} is replaced
// inside strings only, so `x = ${PORT}` is not a value to TOML.
std::string parse_hint(const std::string& path, const toml::parse_error& e) {
  std::ifstream in(path);
  std::string line;
  for (auto n = e.source().begin.line; n > 0 && std::getline(in, line); --n) {
  }
  const std::size_t dollar = line.find("${");
  if (dollar == std::string::npos ||
      std::count(line.begin(), line.begin() + static_cast<std::ptrdiff_t>(dollar), '"') % 2 == 1)
    return "";  // none on the line, or inside a string already
  return " (${VAR} is replaced inside strings only: write \"${...}\", for a string option)";
}

bool parse_file_into(const std::string& path, toml::table& into, Diagnostics& diagnostics) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    diagnostics.add({path, 0, 0}, "", "", "no such file");
    return false;
  }
  if (fs::is_directory(path, ec)) {
    diagnostics.add({path, 0, 0}, "", "", "is a folder, not a config file: name the .toml file in it");
    return false;
  }
  try {
    toml::table parsed = toml::parse_file(path);
    if (into.empty()) into = std::move(parsed);
    else merge_into(into, std::move(parsed));
    return true;
  } catch (const toml::parse_error& e) {
    diagnostics.add(location_of(e.source()), "", "", std::string(e.description()) + parse_hint(path, e));
    return false;
  }
}

// "a.b.0.c" -> {"a","b","0","c"}; a quoted part keeps its dots, as in TOML keys
// ('source.properties."fetch.wait.max.ms"'); "pipeline." is accepted for "pipelines.", and
// "transforms[0]" for "transforms.0".
// Stops at the first '=' outside quotes: `end` is its index (npos if none). Empty on an
// unclosed quote or an empty part.
std::vector<std::string> split_path(const std::string& assignment, std::size_t& end) {
  std::vector<std::string> parts(1);
  end = std::string::npos;
  bool quoted_part = false;
  for (std::size_t i = 0; i < assignment.size(); ++i) {
    char c = assignment[i];
    if (c == ' ' || c == '\t') {
      // As in TOML's dotted keys: blanks around a part go, blanks inside one do not.
      const std::size_t next = assignment.find_first_not_of(" \t", i);
      const bool at_edge = (parts.back().empty() && !quoted_part) || next == std::string::npos ||
                           std::string_view(".=[").find(assignment[next]) != std::string_view::npos;
      if (!at_edge) return {};
      i = (next == std::string::npos ? assignment.size() : next) - 1;
      continue;
    }
    if ((c == '"' || c == '\'') && parts.back().empty() && !quoted_part) {
      std::size_t close = assignment.find(c, i + 1);
      if (close == std::string::npos) return {};
      parts.back() = assignment.substr(i + 1, close - i - 1);
      quoted_part = true;
      i = close;
    } else if (c == '.' || c == '=') {
      if (parts.back().empty() && !quoted_part) return {};
      if (c == '=') {
        end = i;
        break;
      }
      parts.emplace_back();
      quoted_part = false;
    } else if (c == '[' && !quoted_part) {  // transforms[0], as stages are named: transforms.0
      std::size_t close = assignment.find(']', i + 1);
      if (parts.back().empty() || close == std::string::npos || close == i + 1) return {};
      std::string index = assignment.substr(i + 1, close - i - 1);
      if (index.find_first_not_of("0123456789") != std::string::npos) return {};
      parts.push_back(std::move(index));
      i = close;
      if (i + 1 < assignment.size() && assignment[i + 1] != '.' && assignment[i + 1] != '=' &&
          assignment[i + 1] != '[')
        return {};
    } else if (quoted_part) {
      return {};  // text after a closing quote
    } else {
      parts.back() += c;
    }
  }
  if (parts[0] == "pipeline") parts[0] = "pipelines";
  return parts;
}

// A table --set creates carries the assignment as its place, so that an error about it
// (a misspelt pipeline name makes a pipeline with no source) points at the --set.
toml::node_view<toml::node> step(toml::node& at, const std::string& part, bool create,
                                 const std::string& assignment) {
  if (auto* t = at.as_table()) {
    if (!t->contains(part) && create) {
      toml::table placed = toml::parse("t = {}", "--set " + assignment);
      t->insert(part, std::move(*placed.get("t")->as_table()));
    }
    return toml::node_view<toml::node>(t->get(part));
  }
  if (auto* a = at.as_array()) {
    char* end = nullptr;
    unsigned long index = std::strtoul(part.c_str(), &end, 10);
    if (end && *end == '\0' && index < a->size()) return toml::node_view<toml::node>(a->get(index));
  }
  return {};
}

// An index past a list's end in --set's path (parts[i], the list being parts[i - 1]).
std::string past_the_end(const std::vector<std::string>& parts, std::size_t i, const toml::array& list) {
  return "cannot set '" + parts[i] + "': '" + parts[i - 1] + "' has " + std::to_string(list.size()) +
         (list.size() == 1 ? " entry" : " entries") + ", numbered from 0";
}

void apply_set(const std::string& assignment, toml::table& document, Diagnostics& diagnostics) {
  Location where{"--set " + assignment, 0, 0};
  std::size_t eq = std::string::npos;
  std::vector<std::string> parts = split_path(assignment, eq);
  if (eq == std::string::npos || parts.empty()) {
    diagnostics.add(where, "", "", "expected PATH=VALUE, e.g. --set pipeline.sums.tasks=3 (quote a key "
                    "holding dots: --set 'pipeline.sums.source.properties.\"fetch.wait.max.ms\"=5')");
    return;
  }
  std::string text = assignment.substr(eq + 1);
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + text, "--set " + assignment);
  } catch (const toml::parse_error& e) {
    // A number out of TOML's range is said so, not taken as a string (which the option
    // would then refuse as "not a string", hiding why).
    if (std::string_view(e.description()).find("not representable") != std::string_view::npos) {
      diagnostics.add(where, "", "", "cannot use this value: " + std::string(e.description()) +
                                         " (integers are from -9223372036854775808 to 9223372036854775807)");
      return;
    }
    // Not a TOML value: take it as a string (parsed, so it keeps a location).
    std::string escaped;
    for (char c : text) {
      if (c == '"' || c == '\\') escaped += '\\';
      escaped += c;
    }
    try {
      parsed = toml::parse("v = \"" + escaped + "\"", "--set " + assignment);
    } catch (const toml::parse_error& e) {
      diagnostics.add(where, "", "", std::string("cannot use this value: ") + std::string(e.description()));
      return;
    }
  }
  toml::node* at = &document;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    auto next = step(*at, parts[i], true, assignment);
    if (!next) {
      if (const auto* list = at->as_array())
        diagnostics.add(where, "", "", past_the_end(parts, i, *list));
      else
        diagnostics.add(where, "", "", "cannot set '" + parts[i] + "': not a table");
      return;
    }
    at = next.node();
  }
  if (auto* t = at->as_table()) {
    toml::table overlay;
    overlay.insert(parts.back(), std::move(*parsed.get("v")));
    merge_into(*t, std::move(overlay));
  } else if (auto entry = step(*at, parts.back(), false, assignment)) {
    // A list's entry (transforms[0]): a table merges into it as into a table's value, a
    // stage naming a plugin replaces it; anything else replaces it.
    toml::node& value = *parsed.get("v");
    auto* into = entry.node()->as_table();
    auto* table = value.as_table();
    if (into && table && !table->contains("plugin")) {
      merge_into(*into, std::move(*table));
    } else {
      auto* list = at->as_array();
      const auto index = static_cast<std::size_t>(std::stoul(parts.back()));
      if (table) list->replace(list->cbegin() + static_cast<std::ptrdiff_t>(index), std::move(*table));
      else if (auto* a = value.as_array()) list->replace(list->cbegin() + static_cast<std::ptrdiff_t>(index), std::move(*a));
      else list->replace(list->cbegin() + static_cast<std::ptrdiff_t>(index), std::move(value));
    }
  } else if (const auto* list = at->as_array()) {
    diagnostics.add(where, "", "", past_the_end(parts, parts.size() - 1, *list));
  } else {
    diagnostics.add(where, "", "", "cannot set '" + parts.back() + "': its parent is not a table");
  }
}

// `first_file`: the folder of ${PIPEHOST_CONFIG_DIR} in a value --set gives.
std::string expand(const std::string& text, const toml::source_region& where, const std::string& first_file,
                   Diagnostics& diagnostics) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '$') {
      out += text[i];
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (i + 1 >= text.size() || text[i + 1] != '{') {
      out += '$';
      continue;
    }
    std::size_t close = text.find('}', i + 2);
    if (close == std::string::npos) {
      diagnostics.add(location_of(where), "", "", "unclosed '${' in \"" + text + "\"");
      return text;
    }
    std::string inner = text.substr(i + 2, close - i - 2);
    std::string name = inner;
    std::optional<std::string> fallback;
    if (std::size_t sep = inner.find(":-"); sep != std::string::npos) {
      name = inner.substr(0, sep);
      fallback = inner.substr(sep + 2);
    }
    const char* value = std::getenv(name.c_str());
    if (value && *value) {
      out += value;
    } else if (name == "PIPEHOST_CONFIG_DIR" && where.path) {
      // The folder of the file this value is written in: paths next to the config ("."
      // for a file named without a folder, so "${PIPEHOST_CONFIG_DIR}/x" stays relative).
      const bool from_set = where.path->rfind("--set ", 0) == 0;
      const fs::path folder = fs::path(from_set ? first_file : *where.path).parent_path().lexically_normal();
      out += folder.empty() ? std::string(".") : folder.string();
    } else if (fallback) {
      out += *fallback;
    } else {
      diagnostics.add(location_of(where), "", "",
                      "environment variable " + name + (value ? " is empty" : " is not set") +
                          "; set it or give a default: ${" + name + ":-value}");
    }
    i = close;
  }
  return out;
}

void interpolate_node(toml::node& node, const std::string& first_file, Diagnostics& diagnostics) {
  if (auto* s = node.as_string()) {
    if (s->get().find('$') != std::string::npos) s->get() = expand(s->get(), s->source(), first_file, diagnostics);
  } else if (auto* t = node.as_table()) {
    std::vector<std::string> keys_to_expand;  // "${P}.dlq" = { partitions = 1 }: keys too
    for (auto&& [k, v] : *t) {
      interpolate_node(v, first_file, diagnostics);
      if (k.str().find('$') != std::string_view::npos) keys_to_expand.emplace_back(k.str());
    }
    for (const auto& from : keys_to_expand) {
      auto at = t->find(from);
      const toml::source_region where = at->first.source().begin ? at->first.source() : at->second.source();
      std::string to = expand(from, where, first_file, diagnostics);
      if (to == from) continue;
      if (t->contains(to)) {
        diagnostics.add(location_of(where), "", "", "key \"" + from + "\" becomes \"" + to +
                                                        "\", which this table has already");
        continue;
      }
      t->insert(to, std::move(at->second));
      t->erase(from);
    }
  } else if (auto* a = node.as_array()) {
    for (auto& v : *a) interpolate_node(v, first_file, diagnostics);
  }
}

}  // namespace

void interpolate(toml::table& document, Diagnostics& diagnostics, const std::string& first_file) {
  interpolate_node(document, first_file, diagnostics);
}

std::shared_ptr<toml::table> load_document(const LoadRequest& request, Diagnostics& diagnostics) {
  auto document = std::make_shared<toml::table>();
  bool ok = true;
  for (const auto& file : request.files) ok = parse_file_into(file, *document, diagnostics) && ok;
  if (!ok) return nullptr;
  if (!request.env.empty() && !request.files.empty()) {
    fs::path dir = fs::path(request.files.front()).parent_path() / "env";
    fs::path overlay = dir / (request.env + ".toml");
    if (!fs::exists(overlay)) {
      std::vector<std::string> known;
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.path().extension() == ".toml") known.push_back(e.path().stem().string());
      std::sort(known.begin(), known.end());
      diagnostics.add({overlay.string(), 0, 0}, "", "",
                      "no overlay for environment '" + request.env + "'" +
                          (known.empty() ? "" : "; known environments: " + join(known)));
      return nullptr;
    }
    // An environment swaps connection facts, never a pipeline's shape: one overlay must
    // fit every config of the folder.
    try {
      toml::table parsed = toml::parse_file(overlay.string());
      if (const toml::node* p = parsed.get("pipelines")) {
        diagnostics.add(location_of(p->source()), "", "",
                        "an environment overlay sets connections ([kafka] brokers and properties, "
                        "schema_registry, [connections]), not pipelines: move this into the "
                        "config file, or into a [connections] entry its stages use");
        return nullptr;
      }
      merge_into(*document, std::move(parsed));
    } catch (const toml::parse_error& e) {
      diagnostics.add(location_of(e.source()), "", "", std::string(e.description()));
      return nullptr;
    }
  }
  for (const auto& s : request.sets) apply_set(s, *document, diagnostics);
  interpolate(*document, diagnostics, request.files.empty() ? "" : request.files.front());
  return document;
}

}  // namespace pipehost::host
