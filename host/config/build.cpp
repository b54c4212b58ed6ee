#include "config/build.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <functional>
#include <map>
#include <set>

#include "config/options_check.hpp"
#include "config/settings.hpp"
#include "pipehost/kafka_topic_name.hpp"

namespace pipehost::host {
namespace {

// Reads `table` into the settings struct S through S's declaration.
template <class S>
S read_settings(const toml::table& table, OptionsPlace place, Diagnostics& diagnostics) {
  OptionList<S> list;
  S::declare(list);
  place.noun = "key";
  Options values = check_options(table, list.specs(), place, diagnostics);
  S out{};
  list.fill(out, values);
  return out;
}

OptionsPlace place(std::string owner, std::string owner_name, const toml::node& node,
                   std::string pipeline = "", std::vector<std::string> other_keys = {}) {
  OptionsPlace p;
  p.pipeline = std::move(pipeline);
  p.owner = std::move(owner);
  p.owner_name = std::move(owner_name);
  p.where = location_of(node.source());
  p.other_keys = std::move(other_keys);
  return p;
}

class Builder {
 public:
  Builder(Diagnostics& d) : diagnostics_(d) {}

  std::vector<std::string> pipeline_names;  // every [pipelines.NAME] of the document, for hints

  const toml::table* table_at(const toml::table& parent, const char* key, const std::string& pipeline) {
    const toml::node* node = parent.get(key);
    if (!node) return nullptr;
    if (!node->is_table()) {
      diagnostics_.add(location_of(node->source()), pipeline, "",
                       std::string("'") + key + "' must be a table");
      return nullptr;
    }
    return node->as_table();
  }

  void kafka(const toml::table& doc, Config& config) {
    const toml::table* kafka = table_at(doc, "kafka", "");
    if (!kafka) return;
    auto settings = read_settings<KafkaSettings>(*kafka, place("in [kafka]", "[kafka]", *kafka, "", {"topics"}),
                                                 diagnostics_);
    config.kafka_brokers = settings.brokers;
    config.kafka_properties = settings.properties;
    const toml::node* brokers = kafka->get("brokers");
    if (settings.brokers.find_first_not_of(", \t") == std::string::npos)
      diagnostics_.add(location_of(brokers ? brokers->source() : kafka->source()), "", "",
                       "brokers is empty: set it to \"embedded\" or host:port,... of a real cluster (a "
                       "variable it names, e.g. ${KAFKA_BROKERS:-}, may be unset)");
    // Checked as every client will take them: a typo stopped the first stage to start.
    if (const toml::node* properties = kafka->get("properties"); properties && properties->is_table()) {
      for (auto&& [key, node] : *properties->as_table()) {
        const auto value = node.value<std::string>();
        if (!value) continue;  // reported by read_settings
        std::unique_ptr<rd_kafka_conf_t, void (*)(rd_kafka_conf_t*)> conf(rd_kafka_conf_new(), rd_kafka_conf_destroy);
        char error[512];
        if (rd_kafka_conf_set(conf.get(), std::string(key.str()).c_str(), value->c_str(), error, sizeof error) !=
            RD_KAFKA_CONF_OK)
          diagnostics_.add(location_of(node.source()), "", "",
                           "[kafka.properties] " + std::string(key.str()) + ": " + error +
                               " (see librdkafka's CONFIGURATION.md)");
      }
    }
    config.create_topics = settings.create_topics;
    const toml::table* topics = table_at(*kafka, "topics", "");
    if (!topics) return;
    for (auto&& [name, node] : *topics) {
      TopicConfig topic{std::string(name.str())};
      if (!node.is_table()) {
        diagnostics_.add(location_of(node.source()), "", "",
                         "topic '" + topic.name + "' must be a table, e.g. { partitions = 3 }");
        continue;
      }
      if (!is_kafka_topic_name(topic.name))
        diagnostics_.add(location_of(node.source()), "", "",
                         "topic '" + topic.name + "' is not a Kafka topic name (1-249 of letters, digits, "
                         "'.', '_', '-')");
      std::string owner = "topic '" + topic.name + "'";
      auto t = read_settings<TopicSettings>(*node.as_table(), place("in " + owner, owner, node), diagnostics_);
      topic.partitions = t.partitions;
      topic.replication_factor = t.replication_factor;
      config.topics.push_back(topic);
    }
  }

  bool stage(const toml::node& node, const std::string& pipeline, const std::string& label,
             Kind kind, const ComponentCatalog& catalog, const StringMap& connections,
             StageConfig& out, std::vector<std::string> host_keys = {}) {
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
    check_stage_options(pipeline, out, connections, diagnostics_, host_keys);
    return true;
  }

  void http(const toml::table& doc, const ComponentCatalog& catalog, Config& config) {
    const toml::table* http = table_at(doc, "http", "");
    if (!http) return;
    auto settings = read_settings<HttpSettings>(*http, place("in [http]", "[http]", *http, "", {"routes"}),
                                                diagnostics_);
    config.http.listen = settings.listen;
    const toml::node* routes = http->get("routes");
    if (!routes) return;
    const toml::array* list = routes->as_array();
    if (!list) {
      diagnostics_.add(location_of(routes->source()), "", "", "'routes' must be an array of tables ([[http.routes]])");
      return;
    }
    for (std::size_t i = 0; i < list->size(); ++i) {
      const toml::node& node = *list->get(i);
      RouteConfig route;
      const std::string label = "http.routes[" + std::to_string(i) + "]";
      if (!node.is_table()) {
        diagnostics_.add(location_of(node.source()), "", label, "must be a table with path and plugin");
        continue;
      }
      // The route's own keys, then the plugin's options in the same table.
      OptionsPlace where = place("in " + label, label, node);
      where.other_keys = {"plugin"};
      for (auto&& [key, value] : *node.as_table())
        if (key.str() != "path" && key.str() != "methods") where.other_keys.emplace_back(key.str());
      auto settings = read_settings<RouteSettings>(*node.as_table(), where, diagnostics_);
      route.path = settings.path;
      route.methods = settings.methods;
      for (const auto& method : route.methods) {
        const auto& allowed = RouteConfig::kMethods;
        if (std::find(allowed.begin(), allowed.end(), method) != allowed.end()) continue;
        std::string names;
        for (auto name : allowed) names += (names.empty() ? "" : ", ") + std::string(name);
        const toml::node* methods = node.as_table()->get("methods");
        diagnostics_.add(location_of(methods ? methods->source() : node.source()), "", label,
                         "option 'methods' cannot hold \"" + method + "\"; allowed: " + names +
                             " (HEAD and OPTIONS are answered for them)");
      }
      // The server keeps one route per path: a second one hid the first (its GET answered 405).
      const bool taken = std::any_of(config.http.routes.begin(), config.http.routes.end(),
                                     [&](const RouteConfig& r) { return r.path == route.path; });
      if (taken) {
        const toml::node* path = node.as_table()->get("path");
        diagnostics_.add(location_of(path ? path->source() : node.source()), "", label,
                         "path \"" + route.path + "\" is served by an earlier route already: one route per path "
                         "(give it every method in `methods`)");
        continue;
      }
      if (stage(node, "", label, Kind::route, catalog, config.connections, route.stage, {"path", "methods"}))
        config.http.routes.push_back(std::move(route));
    }
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
    // The admin API names a pipeline in a path segment (/pipelines/NAME/pause) and the
    // logs in a "NAME/stage#task" prefix: a '/' or a control character cannot be named.
    if (name.empty() || name.find('/') != std::string::npos ||
        std::any_of(name.begin(), name.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
      diagnostics_.add(p.where, name, "",
                       "a pipeline name must not be empty or hold '/' or control characters (the admin API "
                       "and the logs could not name it): rename the table, e.g. [pipelines.orders-eu]");
      return;
    }
    const toml::table& t = *node.as_table();
    auto settings = read_settings<PipelineSettings>(
        t, place("in pipeline", "pipeline '" + name + "'", node, name, {"source", "transforms", "sink"}),
        diagnostics_);
    p.tasks = settings.tasks;
    p.batch_size = static_cast<std::size_t>(settings.batch_size);
    p.max_in_flight_records = static_cast<std::size_t>(settings.max_in_flight_records);
    p.max_in_flight_bytes = static_cast<std::size_t>(settings.max_in_flight_bytes);
    p.commit_interval_ms = settings.commit_interval_ms;
    p.restart_attempts = settings.restart_attempts;
    p.restart_backoff_ms = settings.restart_backoff_ms;
    p.restart_backoff_max_ms = std::max(settings.restart_backoff_max_ms, settings.restart_backoff_ms);
    p.max_error_rate = settings.max_error_rate;
    p.error_rate_window = static_cast<std::size_t>(settings.error_rate_window);
    p.stall_timeout_ms = settings.stall_timeout_ms;
    p.on_error = settings.on_error == "skip"          ? ErrorPolicy::skip
                 : settings.on_error == "dead_letter" ? ErrorPolicy::dead_letter
                                                      : ErrorPolicy::fail;
    p.dead_letter_topic = settings.dead_letter_topic.empty() ? name + "-dlq" : settings.dead_letter_topic;
    if (p.on_error == ErrorPolicy::dead_letter) {
      // Kafka's topic names: 1-249 of [a-zA-Z0-9._-] (the default is made from the
      // pipeline's name, which TOML lets hold anything).
      const std::string& topic = p.dead_letter_topic;
      if (!is_kafka_topic_name(topic)) {
        const toml::node* given = t.get("dead_letter_topic");
        diagnostics_.add(location_of((given ? given : t.get("on_error"))->source()), name, "",
                         "dead-letter topic '" + topic + "' is not a Kafka topic name (1-249 of letters, digits, "
                         "'.', '_', '-')" + (given ? "" : ": set dead_letter_topic (the default is <pipeline>-dlq)"));
      }
      p.dead_letter_sink = catalog.find("kafka", Kind::sink);
      if (!p.dead_letter_sink)
        diagnostics_.add(location_of(t.get("on_error")->source()), name, "",
                         "on_error = \"dead_letter\" writes with the kafka plugin's sink, which "
                         "is not installed; " + catalog.explain_missing("kafka"));
    }
    p.end_after = settings.end_after;
    if (auto* n = t.get("end_after")) p.end_after_where = location_of(n->source());

    const StringMap& connections = config.connections;
    const toml::node* source = t.get("source");
    const toml::node* sink = t.get("sink");
    if (!source && !sink) {
      // Most often a misspelt name in --set or an overlay, which made a pipeline of its own.
      std::vector<std::string> others;
      for (const auto& n : pipeline_names) if (n != name) others.push_back(n);
      const std::string hint = did_you_mean(name, others);
      diagnostics_.add(p.where, name, "",
                       "missing [pipelines." + name + ".source] and [pipelines." + name + ".sink]" +
                           (hint.empty() ? "" : "; " + hint) + (others.empty() ? "" : " (pipelines: " + join(others) + ")"));
    } else {
      if (source) stage(*source, name, "source", Kind::source, catalog, connections, p.source);
      else diagnostics_.add(p.where, name, "", "missing [pipelines." + name + ".source]");
      if (sink) stage(*sink, name, "sink", Kind::sink, catalog, connections, p.sink);
      else diagnostics_.add(p.where, name, "", "missing [pipelines." + name + ".sink]");
    }
    // A transactional kafka sink commits the kafka source's offsets in its transactions.
    if (sink && source && p.sink.plugin == "kafka" && p.source.plugin != "kafka" && p.sink.table) {
      auto eos = p.sink.options.values.find("exactly_once");
      const bool* on = eos == p.sink.options.values.end() ? nullptr : std::get_if<bool>(&eos->second);
      if (on && *on) {
        const toml::node* at = p.sink.table->get("exactly_once");
        diagnostics_.add(location_of((at ? at : sink)->source()), name, "sink",
                         "exactly_once needs the pipeline's source to be the kafka source (its consumed "
                         "offsets commit in the sink's transactions), and this one's is " + p.source.plugin +
                         ": set exactly_once = false");
      }
    }
    // What the pipeline writes to a topic its own source reads is read again and written
    // again, without end: its sink's topic, and its rejects' dead-letter topic.
    if (source && p.source.plugin == "kafka") {
      auto topics = p.source.options.values.find("topics");
      const auto* names =
          topics == p.source.options.values.end() ? nullptr : std::get_if<std::vector<std::string>>(&topics->second);
      auto read = [&](const std::string& topic) {
        return names && std::find(names->begin(), names->end(), topic) != names->end();
      };
      if (p.on_error == ErrorPolicy::dead_letter && read(p.dead_letter_topic)) {
        const toml::node* given = t.get("dead_letter_topic");
        diagnostics_.add(location_of((given ? given : t.get("on_error"))->source()), name, "",
                         "dead-letter topic '" + p.dead_letter_topic + "' is a topic this pipeline's source "
                         "reads: its rejected records would be read, rejected and written there again without "
                         "end; set dead_letter_topic to another topic");
      }
      if (sink && p.sink.plugin == "kafka" && p.sink.table) {
        auto topic = p.sink.options.values.find("topic");
        const auto* written =
            topic == p.sink.options.values.end() ? nullptr : std::get_if<std::string>(&topic->second);
        if (written && read(*written)) {
          const toml::node* at = p.sink.table->get("topic");
          diagnostics_.add(location_of((at ? at : sink)->source()), name, "sink",
                           "topic '" + *written + "' is a topic this pipeline's source reads: every record "
                           "would be read and written there again without end; write to another topic");
        }
      }
    }
    if (auto* transforms = t.get("transforms")) {
      if (auto* a = transforms->as_array()) {
        for (std::size_t i = 0; i < a->size(); ++i) {
          StageConfig s;
          stage(*a->get(i), name, "transforms[" + std::to_string(i) + "]", Kind::transform,
                catalog, connections, s);
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
  auto file = read_settings<FileSettings>(doc, place("at the top level", "the file", doc, "", {"kafka", "pipelines", "http"}),
                                          diagnostics);
  config.plugin_path = plugin_path_of(doc, files.empty() ? "" : files.front());
  config.schema_registry = file.schema_registry;
  config.admin = file.admin;
  config.admin_token = file.admin_token;
  config.connections = file.connections;
  if (const toml::node* path = doc.get("plugin_path")) {
    std::error_code ec;
    for (const auto& folder : config.plugin_path)
      if (!std::filesystem::is_directory(folder, ec))
        diagnostics.add(location_of(path->source()), "", "",
                        "plugin_path: folder " + folder + " does not exist (a relative path is from the "
                        "config file's folder)");
  }
  if (const auto& url = config.schema_registry;
      url != "embedded" && url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
    const toml::node* node = doc.get("schema_registry");
    diagnostics.add(location_of(node ? node->source() : doc.source()), "", "",
                    "schema_registry is '" + url + "': set it to \"embedded\" or the http(s):// URL of a "
                    "Confluent-compatible registry (a variable it names may be unset)");
  }
  b.kafka(doc, config);
  b.http(doc, catalog, config);
  const toml::node* pipelines = doc.get("pipelines");
  if (!config.http.routes.empty() && !pipelines) return config;  // a file that only serves routes
  if (pipelines && !pipelines->is_table()) {
    diagnostics.add(location_of(pipelines->source()), "", "",
                    "'pipelines' must be a table: define each pipeline as [pipelines.NAME], with a source "
                    "and a sink");
    return config;
  }
  if (!pipelines || !pipelines->is_table() || pipelines->as_table()->empty()) {
    diagnostics.add({files.empty() ? "" : files.front(), 0, 0}, "", "",
                    "no pipelines: define at least one [pipelines.NAME] with a source and a sink");
    return config;
  }
  for (auto&& [name, node] : *pipelines->as_table()) b.pipeline_names.emplace_back(name.str());
  for (auto&& [name, node] : *pipelines->as_table())
    b.pipeline(std::string(name.str()), node, catalog, config);

  std::set<std::string> names;
  for (const auto& p : config.pipelines) names.insert(p.name);
  for (const auto& p : config.pipelines) {
    for (const auto& after : p.end_after) {
      if (after != p.name && names.count(after)) continue;
      std::vector<std::string> others(names.begin(), names.end());
      std::string hint = did_you_mean(after, others);
      diagnostics.add(p.end_after_where, p.name, "",
                      "end_after names no other pipeline: '" + after + "'; " +
                          (hint.empty() ? "" : hint + " ") + "pipelines: " + join(others));
    }
  }
  // Pipelines that wait for each other to end never end: named once per cycle.
  std::map<std::string, const PipelineConfig*> by_name;
  for (const auto& p : config.pipelines) by_name[p.name] = &p;
  std::set<std::string> done, reported;
  std::function<void(const PipelineConfig&, std::vector<std::string>&)> visit =
      [&](const PipelineConfig& p, std::vector<std::string>& path) {
        auto on_path = std::find(path.begin(), path.end(), p.name);
        if (on_path != path.end()) {
          std::vector<std::string> cycle(on_path, path.end());
          if (reported.insert(*std::min_element(cycle.begin(), cycle.end())).second) {
            cycle.push_back(p.name);
            diagnostics.add(p.end_after_where, p.name, "",
                            "end_after makes a cycle (" + join(cycle, " -> ") +
                                "): each waits for the other to end, so none would; break the cycle");
          }
          return;
        }
        if (done.count(p.name)) return;
        path.push_back(p.name);
        for (const auto& after : p.end_after)
          if (auto it = by_name.find(after); it != by_name.end() && after != p.name) visit(*it->second, path);
        path.pop_back();
        done.insert(p.name);
      };
  for (const auto& p : config.pipelines) {
    std::vector<std::string> path;
    visit(p, path);
  }
  return config;
}

}  // namespace pipehost::host
