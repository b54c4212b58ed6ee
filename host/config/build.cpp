#include "config/build.hpp"

#include <filesystem>
#include <set>

#include "config/options_check.hpp"

namespace pipehost::host {
namespace {

const std::vector<std::string> kTopLevelKeys = {"plugin_path", "kafka", "schema_registry",
                                                "admin", "admin_token", "pipelines"};
const std::vector<std::string> kKafkaKeys = {"brokers", "properties", "topics", "create_topics"};
const std::vector<std::string> kTopicKeys = {"partitions", "replication_factor"};
const std::vector<std::string> kPipelineKeys = {
    "tasks",       "batch_size",        "max_in_flight_records", "max_in_flight_bytes",
    "commit_interval_ms", "on_error",   "dead_letter_topic",     "end_after",
    "source",      "transforms",        "sink",                  "description"};

class Builder {
 public:
  Builder(Diagnostics& d) : diagnostics_(d) {}

  void unknown_keys(const toml::table& table, const std::vector<std::string>& allowed,
                    const std::string& pipeline, const std::string& what) {
    for (auto&& [key, node] : table) {
      std::string name(key.str());
      if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) continue;
      std::string hint = did_you_mean(name, allowed);
      Location where = location_of(key.source());
      if (where.file.empty()) where = location_of(node.source());
      diagnostics_.add(where, pipeline, "",
                       "unknown key '" + name + "' in " + what + "; " +
                           (hint.empty() ? "" : hint + " ") + "allowed: " + join(allowed));
    }
  }

  template <class T>
  void read(const toml::table& table, const char* key, T& out, const std::string& pipeline,
            const char* type_name, std::int64_t min = 0) {
    const toml::node* node = table.get(key);
    if (!node) return;
    if constexpr (std::is_same_v<T, std::string>) {
      if (auto s = node->value_exact<std::string>()) {
        out = *s;
        return;
      }
    } else if constexpr (std::is_same_v<T, bool>) {
      if (auto b = node->value_exact<bool>()) {
        out = *b;
        return;
      }
    } else {
      if (auto i = node->value_exact<std::int64_t>(); i && *i >= min) {
        out = static_cast<T>(*i);
        return;
      }
    }
    diagnostics_.add(location_of(node->source()), pipeline, "",
                     std::string("'") + key + "' must be " + type_name);
  }

  const toml::table* table_at(const toml::table& parent, const char* key,
                              const std::string& pipeline, bool required) {
    const toml::node* node = parent.get(key);
    if (!node) {
      if (required)
        diagnostics_.add(location_of(parent.source()), pipeline, "",
                         std::string("missing '") + key + "' table");
      return nullptr;
    }
    if (!node->is_table()) {
      diagnostics_.add(location_of(node->source()), pipeline, "",
                       std::string("'") + key + "' must be a table");
      return nullptr;
    }
    return node->as_table();
  }

  void kafka(const toml::table& doc, Config& config) {
    const toml::table* kafka = table_at(doc, "kafka", "", false);
    if (!kafka) return;
    unknown_keys(*kafka, kKafkaKeys, "", "[kafka]");
    read(*kafka, "brokers", config.kafka_brokers, "", "a string: \"embedded\" or host:port,...");
    read(*kafka, "create_topics", config.create_topics, "", "true or false");
    if (const toml::table* props = table_at(*kafka, "properties", "", false)) {
      for (auto&& [k, v] : *props) {
        if (auto s = v.value<std::string>()) config.kafka_properties[std::string(k.str())] = *s;
        else if (v.is_integer()) config.kafka_properties[std::string(k.str())] = std::to_string(*v.value<std::int64_t>());
        else if (v.is_boolean()) config.kafka_properties[std::string(k.str())] = *v.value<bool>() ? "true" : "false";
        else diagnostics_.add(location_of(v.source()), "", "", "[kafka.properties] values must be strings, integers or booleans");
      }
    }
    if (const toml::table* topics = table_at(*kafka, "topics", "", false)) {
      for (auto&& [name, node] : *topics) {
        TopicConfig topic{std::string(name.str())};
        if (!node.is_table()) {
          diagnostics_.add(location_of(node.source()), "", "",
                           "topic '" + topic.name + "' must be a table, e.g. { partitions = 3 }");
          continue;
        }
        unknown_keys(*node.as_table(), kTopicKeys, "", "topic '" + topic.name + "'");
        read(*node.as_table(), "partitions", topic.partitions, "", "an integer >= 1", 1);
        read(*node.as_table(), "replication_factor", topic.replication_factor, "", "an integer >= 1", 1);
        config.topics.push_back(topic);
      }
    }
  }

  bool stage(const toml::node& node, const std::string& pipeline, const std::string& label,
             Kind kind, const ComponentCatalog& catalog, StageConfig& out) {
    out.label = label;
    out.where = location_of(node.source());
    if (!node.is_table()) {
      diagnostics_.add(out.where, pipeline, label, "must be a table with a 'plugin' key");
      return false;
    }
    out.table = node.as_table();
    auto plugin = out.table->get("plugin");
    if (!plugin || !plugin->is_string()) {
      auto names = catalog.names(kind);
      diagnostics_.add(out.where, pipeline, label,
                       "needs plugin = \"NAME\"; installed " + std::string(kind_name(kind)) +
                           "s: " + join(names));
      return false;
    }
    out.plugin = *plugin->value<std::string>();
    out.component = catalog.find(out.plugin, kind);
    if (!out.component) {
      auto names = catalog.names(kind);
      std::string hint = did_you_mean(out.plugin, names);
      std::string why = catalog.explain_missing(out.plugin);
      diagnostics_.add(location_of(plugin->source()), pipeline, label,
                       "unknown " + std::string(kind_name(kind)) + " plugin '" + out.plugin +
                           "'; " + (hint.empty() ? "" : hint + " ") + "installed: " + join(names) +
                           (why.empty() ? "" : "; " + why) +
                           " (see `pipehost plugins`; plugin_path or PIPEHOST_PLUGIN_PATH add folders)");
      return false;
    }
    check_stage_options(pipeline, out, diagnostics_);
    return true;
  }

  void pipeline(const std::string& name, const toml::node& node, const ComponentCatalog& catalog,
                Config& config) {
    PipelineConfig p;
    p.name = name;
    p.where = location_of(node.source());
    if (!node.is_table()) {
      diagnostics_.add(p.where, name, "", "a pipeline must be a table");
      return;
    }
    const toml::table& t = *node.as_table();
    unknown_keys(t, kPipelineKeys, name, "pipeline");
    read(t, "tasks", p.tasks, name, "an integer >= 1", 1);
    read(t, "batch_size", p.batch_size, name, "an integer >= 1", 1);
    read(t, "max_in_flight_records", p.max_in_flight_records, name, "an integer >= 1", 1);
    read(t, "max_in_flight_bytes", p.max_in_flight_bytes, name, "an integer >= 1", 1);
    read(t, "commit_interval_ms", p.commit_interval_ms, name, "an integer >= 0", 0);
    read(t, "end_after", p.end_after, name, "the name of another pipeline");
    if (auto* n = t.get("end_after")) p.end_after_where = location_of(n->source());
    std::string policy = "fail";
    read(t, "on_error", policy, name, "\"fail\", \"skip\" or \"dead_letter\"");
    if (policy == "fail") p.on_error = ErrorPolicy::fail;
    else if (policy == "skip") p.on_error = ErrorPolicy::skip;
    else if (policy == "dead_letter") p.on_error = ErrorPolicy::dead_letter;
    else {
      std::string hint = did_you_mean(policy, {"fail", "skip", "dead_letter"});
      diagnostics_.add(location_of(t.get("on_error")->source()), name, "",
                       "on_error cannot be \"" + policy + "\"; " + (hint.empty() ? "" : hint + " ") +
                           "allowed: fail, skip, dead_letter");
    }
    p.dead_letter_topic = name + "-dlq";
    read(t, "dead_letter_topic", p.dead_letter_topic, name, "a topic name");

    if (auto* source = t.get("source")) stage(*source, name, "source", Kind::source, catalog, p.source);
    else diagnostics_.add(p.where, name, "", "missing [pipelines." + name + ".source]");
    if (auto* sink = t.get("sink")) stage(*sink, name, "sink", Kind::sink, catalog, p.sink);
    else diagnostics_.add(p.where, name, "", "missing [pipelines." + name + ".sink]");
    if (auto* transforms = t.get("transforms")) {
      if (auto* a = transforms->as_array()) {
        for (std::size_t i = 0; i < a->size(); ++i) {
          StageConfig s;
          stage(*a->get(i), name, "transforms[" + std::to_string(i) + "]", Kind::transform,
                catalog, s);
          p.transforms.push_back(std::move(s));
        }
      } else {
        diagnostics_.add(location_of(transforms->source()), name, "",
                         "'transforms' must be an array of tables ([[pipelines." + name +
                             ".transforms]])");
      }
    }
    config.pipelines.push_back(std::move(p));
  }

 private:
  Diagnostics& diagnostics_;
};

}  // namespace

std::vector<std::string> plugin_path_of(const toml::table& document, const std::string& first_file) {
  std::vector<std::string> out;
  auto base = std::filesystem::path(first_file).parent_path();
  auto add = [&](const std::string& p) {
    std::filesystem::path path(p);
    out.push_back((path.is_absolute() ? path : base / path).lexically_normal().string());
  };
  if (auto* node = document.get("plugin_path")) {
    if (auto s = node->value<std::string>()) add(*s);
    if (auto* a = node->as_array())
      for (const auto& item : *a)
        if (auto s = item.value<std::string>()) add(*s);
  }
  return out;
}

Config build_config(std::shared_ptr<toml::table> document, const std::vector<std::string>& files,
                    const ComponentCatalog& catalog, Diagnostics& diagnostics) {
  Config config;
  config.files = files;
  config.document = document;
  const toml::table& doc = *document;
  Builder b(diagnostics);
  b.unknown_keys(doc, kTopLevelKeys, "", "the top level");
  if (auto* pp = doc.get("plugin_path"); pp && !pp->is_string() && !pp->is_array())
    diagnostics.add(location_of(pp->source()), "", "", "plugin_path must be a string or an array of strings");
  config.plugin_path = plugin_path_of(doc, files.empty() ? "" : files.front());
  b.kafka(doc, config);
  if (auto* admin = doc.get("admin")) {
    if (auto s = admin->value_exact<std::string>()) config.admin = *s;
    else diagnostics.add(location_of(admin->source()), "", "", "admin must be a string \"host:port\", e.g. \"127.0.0.1:9464\"");
  }
  if (auto* token = doc.get("admin_token")) {
    if (auto s = token->value_exact<std::string>()) config.admin_token = *s;
    else diagnostics.add(location_of(token->source()), "", "",
                         "admin_token must be a string, e.g. \"${PIPEHOST_ADMIN_TOKEN}\"");
  }
  if (auto* sr = doc.get("schema_registry")) {
    if (auto s = sr->value_exact<std::string>()) config.schema_registry = *s;
    else diagnostics.add(location_of(sr->source()), "", "", "schema_registry must be a string: \"embedded\" or a URL");
  }
  const toml::node* pipelines = doc.get("pipelines");
  if (!pipelines || !pipelines->is_table() || pipelines->as_table()->empty()) {
    diagnostics.add({files.empty() ? "" : files.front(), 0, 0}, "", "",
                    "no pipelines: define at least one [pipelines.NAME] with a source and a sink");
    return config;
  }
  for (auto&& [name, node] : *pipelines->as_table())
    b.pipeline(std::string(name.str()), node, catalog, config);

  std::set<std::string> names;
  for (const auto& p : config.pipelines) names.insert(p.name);
  for (const auto& p : config.pipelines) {
    if (p.end_after.empty()) continue;
    if (p.end_after == p.name || !names.count(p.end_after)) {
      std::vector<std::string> others(names.begin(), names.end());
      std::string hint = did_you_mean(p.end_after, others);
      diagnostics.add(p.end_after_where, p.name, "",
                      "end_after names no other pipeline: '" + p.end_after + "'; " +
                          (hint.empty() ? "" : hint + " ") + "pipelines: " + join(others));
    }
  }
  return config;
}

}  // namespace pipehost::host
