#include <doctest/doctest.h>

#include "test_support.hpp"

using namespace pipehost;
using namespace pipehost::host;
using namespace pipehost::host::test;

namespace {
std::string text(const Options& o, const char* name) { return std::get<std::string>(o.values.at(name)); }
std::int64_t integer(const Options& o, const char* name) { return std::get<std::int64_t>(o.values.at(name)); }

const char* kValid = R"(
[kafka]
brokers = "embedded"
[kafka.topics]
t = { partitions = 3 }

[pipelines.produce]
source = { plugin = "datagen", count = 10, seed = 1 }
sink = { plugin = "kafka", topic = "t" }

[pipelines.read]
tasks = 2
end_after = "produce"
on_error = "skip"
source = { plugin = "kafka", topics = ["t"], group = "g" }
sink = { plugin = "log" }
)";
}

TEST_CASE("a valid file builds pipelines with defaults filled in") {
  auto r = load(kValid);
  REQUIRE_MESSAGE(r.diagnostics.empty(), r.text());
  REQUIRE(r.config.pipelines.size() == 2);
  const PipelineConfig& read = r.config.pipelines[1];
  CHECK(read.name == "read");
  CHECK(read.tasks == 2);
  CHECK(read.on_error == ErrorPolicy::skip);
  CHECK(text(read.sink.options, "key_field") == "account_number");
  CHECK(text(read.source.options, "start") == "earliest");
  CHECK(r.config.topics.at(0).partitions == 3);
}

TEST_CASE("every problem is reported at once with file:line:column, pipeline and stage") {
  auto r = load(R"(
[pipelines.p]
taks = 2
source = { plugin = "datagen", count = "many", colour = 1 }
sink = { plugin = "lgo" }
)");
  std::string text = r.text();
  CHECK(r.diagnostics.size() == 4);
  CHECK(text.find("config.toml:3:1: error: pipeline 'p': unknown key 'taks' in pipeline; did you mean 'tasks'?") != std::string::npos);
  CHECK(text.find("config.toml:4:40: error: pipeline 'p', source: option 'count' must be an integer, not a string") != std::string::npos);
  CHECK(text.find("unknown option 'colour' for plugin 'datagen'") != std::string::npos);
  CHECK(text.find("unknown sink plugin 'lgo'; did you mean 'log'?") != std::string::npos);
}

TEST_CASE("missing required options and bad allowed values name what is allowed") {
  auto r = load(R"(
[pipelines.p]
source = { plugin = "kafka", topics = ["t"], start = "earlyest" }
sink = { plugin = "log" }
)");
  std::string text = r.text();
  CHECK(text.find("plugin 'kafka' needs option 'group' (string)") != std::string::npos);
  CHECK(text.find("option 'start' cannot be \"earlyest\"; did you mean 'earliest'? allowed: earliest, latest") != std::string::npos);
}

TEST_CASE("${VAR} and ${VAR:-default} are interpolated; an unset variable without default is an error") {
  ::setenv("PIPEHOST_TEST_GROUP", "from-env", 1);
  ::unsetenv("PIPEHOST_TEST_UNSET");
  auto r = load(R"(
[kafka]
brokers = "${PIPEHOST_TEST_UNSET:-embedded}"
[pipelines.p]
source = { plugin = "kafka", topics = ["t"], group = "${PIPEHOST_TEST_GROUP}-$${literal}" }
sink = { plugin = "log", key_field = "${PIPEHOST_TEST_UNSET}" }
)");
  CHECK(r.config.kafka_brokers == "embedded");
  REQUIRE(r.config.pipelines.size() == 1);
  CHECK(text(r.config.pipelines[0].source.options, "group") == "from-env-${literal}");
  CHECK(r.text().find("config.toml:6:38: error: environment variable PIPEHOST_TEST_UNSET is not set") != std::string::npos);
}

TEST_CASE("${PIPEHOST_CONFIG_DIR} is the config's folder; \".\" for a file named without one") {
  ::unsetenv("PIPEHOST_CONFIG_DIR");
  const std::filesystem::path path = write_temp("folder.toml", R"(
[pipelines.p]
source = { plugin = "datagen", count = 1 }
sink = { plugin = "log", key_field = "${PIPEHOST_CONFIG_DIR}/x" }
)");
  auto key_field = [](const std::string& file) {
    Diagnostics diagnostics;
    LoadRequest request;
    request.files = {file};
    auto document = load_document(request, diagnostics);
    REQUIRE(document);
    Config config = build_config(document, request.files, plugins(), diagnostics);
    REQUIRE_MESSAGE(diagnostics.empty(), diagnostics.format());
    return text(config.pipelines.at(0).sink.options, "key_field");
  };
  CHECK(key_field(path.string()) == path.parent_path().string() + "/x");
  const auto was = std::filesystem::current_path();
  std::filesystem::current_path(path.parent_path());
  CHECK(key_field("folder.toml") == "./x");  // was "/x": the root folder
  CHECK(key_field("./folder.toml") == "./x");
  std::filesystem::current_path(was);
}

TEST_CASE("--set overrides values, creating tables as needed, with its own location in errors") {
  auto r = load(kValid, {"pipeline.read.tasks=5", "pipeline.produce.source.count=77",
                         "pipeline.read.source.group=new-group", "kafka.brokers=host:9092"});
  REQUIRE_MESSAGE(r.diagnostics.empty(), r.text());
  CHECK(r.config.pipelines[1].tasks == 5);
  CHECK(integer(r.config.pipelines[0].source.options, "count") == 77);
  CHECK(text(r.config.pipelines[1].source.options, "group") == "new-group");
  CHECK(r.config.kafka_brokers == "host:9092");

  auto misspelt = load(kValid, {"pipeline.reed.tasks=3"});
  CHECK(misspelt.text().find("--set pipeline.reed.tasks=3:1:5: error: pipeline 'reed': missing "
                             "[pipelines.reed.source] and [pipelines.reed.sink]; did you mean 'read'?") !=
        std::string::npos);

  auto bad = load(kValid, {"pipeline.read.tasks=zero"});
  CHECK(bad.text().find("--set pipeline.read.tasks=zero:1:5: error: pipeline 'read': key 'tasks' must be an integer, not a string") != std::string::npos);
  for (const char* inf : {"pipeline.produce.source.rate=inf", "pipeline.produce.source.rate=-inf",
                          "pipeline.produce.source.rate=nan"})
    CHECK_MESSAGE(load(kValid, {inf}).text().find("option 'rate' must be a finite number") != std::string::npos, inf);
  auto negative = load(kValid, {"pipeline.read.tasks=0"});
  CHECK(negative.text().find("pipeline 'read': key 'tasks' must be between 1 and 1024") != std::string::npos);
  auto huge = load(kValid, {"pipeline.read.tasks=99999999999999999999"});
  CHECK(huge.text().find("is not representable in 64 bits (integers are from -9223372036854775808 to "
                         "9223372036854775807)") != std::string::npos);
  CHECK(load(kValid, {"pipeline.read.source.group=0012"}).diagnostics.empty());  // not TOML: a string

  // Blanks around the path's parts and the '=' go, as in TOML's dotted keys.
  auto spaced = load(kValid, {"pipeline.read.tasks = 4", " pipeline . produce.source.count =9"});
  REQUIRE_MESSAGE(spaced.diagnostics.empty(), spaced.text());
  CHECK(spaced.config.pipelines[1].tasks == 4);
  CHECK(integer(spaced.config.pipelines[0].source.options, "count") == 9);
  CHECK(load(kValid, {"pipeline.read.ta sks=4"}).text().find("expected PATH=VALUE") != std::string::npos);
}

TEST_CASE("--set takes a quoted key holding dots whole, as TOML does") {
  auto r = load(kValid, {"pipeline.read.source.properties.\"fetch.wait.max.ms\"=\"5\"",
                         "pipeline.read.source.properties.'queued.min.messages'=1000",
                         "pipeline.read.source.\"group\"=g=2"});
  REQUIRE_MESSAGE(r.diagnostics.empty(), r.text());
  const auto& props = std::get<StringMap>(r.config.pipelines[1].source.options.values.at("properties"));
  CHECK(props.at("fetch.wait.max.ms") == "5");
  CHECK(props.at("queued.min.messages") == "1000");
  CHECK(text(r.config.pipelines[1].source.options, "group") == "g=2");
  for (const char* bad : {"pipeline.read.\"tasks=2", "pipeline..tasks=2", "pipeline.read.\"tasks\"x=2", "=2"})
    CHECK_MESSAGE(load(kValid, {bad}).text().find("expected PATH=VALUE") != std::string::npos, bad);
}

TEST_CASE("--set names a stage of a list as transforms[0] (as errors name it) or transforms.0") {
  const char* with_transforms = R"(
[pipelines.p]
source = { plugin = "datagen", count = 10, seed = 1 }
transforms = [ { plugin = "json_decode" } ]
sink = { plugin = "log" }
)";
  for (const char* set : {"pipeline.p.transforms[0].max_depth=7", "pipeline.p.transforms.0.max_depth=7"}) {
    auto r = load(with_transforms, {set});
    REQUIRE_MESSAGE(r.diagnostics.empty(), r.text());
    CHECK(integer(r.config.pipelines[0].transforms.at(0).options, "max_depth") == 7);
  }
  CHECK(load(with_transforms, {"pipeline.p.transforms[1].max_depth=7"}).text().find(
            "cannot set '1': 'transforms' has 1 entry, numbered from 0") != std::string::npos);
  // The entry itself: a table merges into the stage, one naming a plugin replaces it.
  auto merged = load(with_transforms, {"pipeline.p.transforms[0]={}", "pipeline.p.transforms[0]={ max_depth = 9 }"});
  REQUIRE_MESSAGE(merged.diagnostics.empty(), merged.text());
  CHECK(merged.config.pipelines[0].transforms.at(0).plugin == "json_decode");
  CHECK(integer(merged.config.pipelines[0].transforms.at(0).options, "max_depth") == 9);
  auto replaced = load(with_transforms, {"pipeline.p.transforms[0]={ plugin = \"json_encode\" }"});
  REQUIRE_MESSAGE(replaced.diagnostics.empty(), replaced.text());
  CHECK(replaced.config.pipelines[0].transforms.at(0).plugin == "json_encode");
  CHECK(load(with_transforms, {"pipeline.p.transforms[2]={}"}).text().find(
            "cannot set '2': 'transforms' has 1 entry, numbered from 0") != std::string::npos);
  for (const char* bad : {"pipeline.p.transforms[x].a=1", "pipeline.p.transforms[0]a=1", "pipeline.p.[0].a=1",
                          "pipeline.p.transforms[0.a=1"})
    CHECK_MESSAGE(load(with_transforms, {bad}).text().find("expected PATH=VALUE") != std::string::npos, bad);
}

TEST_CASE("a stage table naming a plugin replaces the stage, in --set as in overlays") {
  auto r = load(kValid, {"pipeline.read.sink={plugin=\"file\", path=\"/dev/null\"}"});
  REQUIRE_MESSAGE(r.diagnostics.empty(), r.text());
  CHECK(r.config.pipelines[1].sink.plugin == "file");
  CHECK(text(r.config.pipelines[1].sink.options, "path") == "/dev/null");
}

TEST_CASE("--env merges <dir>/env/NAME.toml over the file; an unknown env lists the known ones") {
  write_temp("env/prod.toml", "[kafka]\nbrokers = \"prod:9092\"\n[connections]\nredis = \"redis://prod:6379\"\n");
  auto r = load(kValid, {}, "prod");
  REQUIRE_MESSAGE(r.diagnostics.empty(), r.text());
  CHECK(r.config.kafka_brokers == "prod:9092");
  CHECK(r.config.connections.at("redis") == "redis://prod:6379");
  CHECK(r.config.pipelines[1].sink.plugin == "log");

  write_temp("env/shape.toml", "[pipelines.read.sink]\nkey_field = \"other\"\n");
  auto shape = load(kValid, {}, "shape");
  CHECK(shape.text().find("an environment overlay sets connections") != std::string::npos);

  auto missing = load(kValid, {}, "staging");
  CHECK(missing.text().find("no overlay for environment 'staging'; known environments: prod, shape") != std::string::npos);
}

TEST_CASE("end_after must name another pipeline; a file without pipelines is refused") {
  auto r = load(R"(
[pipelines.p]
end_after = "prodcue"
source = { plugin = "datagen" }
sink = { plugin = "log" }
[pipelines.produce]
source = { plugin = "datagen" }
sink = { plugin = "log" }
)");
  CHECK(r.text().find("end_after names no other pipeline: 'prodcue'; did you mean 'produce'?") != std::string::npos);
  auto empty = load("[kafka]\nbrokers = \"embedded\"\n");
  CHECK(empty.text().find("no pipelines") != std::string::npos);
}

TEST_CASE("TOML syntax errors point at the place") {
  auto r = load("[pipelines.p\nsource = 1\n");
  REQUIRE(r.diagnostics.size() == 1);
  CHECK(r.text().find("config.toml:1:") != std::string::npos);
}

TEST_CASE("an option declared as a connection comes from [connections] when the stage leaves it out") {
  auto r = load(R"(
[connections]
redis = "redis://from-connections:6379"
[pipelines.p]
source = { plugin = "datagen" }
sink = { plugin = "redis_sum" }
[pipelines.q]
source = { plugin = "datagen" }
sink = { plugin = "redis_sum", url = "redis://own:6379" }
)");
  REQUIRE_MESSAGE(r.diagnostics.empty(), r.text());
  CHECK(text(r.config.pipelines[0].sink.options, "url") == "redis://from-connections:6379");
  CHECK(text(r.config.pipelines[1].sink.options, "url") == "redis://own:6379");
}

TEST_CASE("pipelines that wait for each other to end are a cycle; two routes on one path are refused") {
  auto r = load(R"(
[pipelines.a]
end_after = "b"
source = { plugin = "datagen" }
sink = { plugin = "log" }
[pipelines.b]
end_after = ["c"]
source = { plugin = "datagen" }
sink = { plugin = "log" }
[pipelines.c]
end_after = "a"
source = { plugin = "datagen" }
sink = { plugin = "log" }
[pipelines.d]
end_after = "a"
source = { plugin = "datagen" }
sink = { plugin = "log" }
)");
  CHECK(r.text().find("end_after makes a cycle (a -> b -> c -> a)") != std::string::npos);
  CHECK(r.diagnostics.size() == 1);  // once, not once per member; d only waits on it

  auto routes = load(R"(
[pipelines.p]
source = { plugin = "datagen" }
sink = { plugin = "log" }
[http]
listen = "127.0.0.1:18999"
[[http.routes]]
path = "/x"
plugin = "sqlite_query"
database = "/tmp/x.sqlite"
query = "SELECT 1"
[[http.routes]]
path = "/x"
methods = ["POST"]
plugin = "sqlite_query"
database = "/tmp/x.sqlite"
query = "SELECT 2"
)");
  CHECK(routes.text().find("path \"/x\" is served by an earlier route already") != std::string::npos);
}

TEST_CASE("a dead-letter topic that Kafka would refuse is named at validate") {
  auto r = load(R"(
[pipelines."food counter"]
on_error = "dead_letter"
source = { plugin = "datagen" }
sink = { plugin = "log" }
[pipelines.ok]
on_error = "dead_letter"
dead_letter_topic = "bad topic"
source = { plugin = "datagen" }
sink = { plugin = "log" }
)");
  CHECK(r.text().find("dead-letter topic 'food counter-dlq' is not a Kafka topic name") != std::string::npos);
  CHECK(r.text().find("set dead_letter_topic (the default is <pipeline>-dlq)") != std::string::npos);
  CHECK(r.text().find("dead-letter topic 'bad topic' is not a Kafka topic name") != std::string::npos);

  // The source's own topic: every reject would be read and dead-lettered again, forever.
  auto loop = load(R"(
[pipelines.orders]
on_error = "dead_letter"
dead_letter_topic = "orders"
source = { plugin = "kafka", topics = ["payments", "orders"], group = "g" }
sink = { plugin = "log" }
[pipelines.fine]
on_error = "dead_letter"
source = { plugin = "kafka", topics = ["orders"], group = "g2" }
sink = { plugin = "log" }
)");
  CHECK(loop.text().find(":4:21: error: pipeline 'orders': dead-letter topic 'orders' is a topic this pipeline's "
                         "source reads") != std::string::npos);
  CHECK(loop.text().find("pipeline 'fine'") == std::string::npos);
  auto echo = load(R"(
[pipelines.echo]
source = { plugin = "kafka", topics = ["orders"], group = "g" }
sink = { plugin = "kafka", topic = "orders" }
)");
  CHECK(echo.text().find(":4:36: error: pipeline 'echo', sink: topic 'orders' is a topic this pipeline's source "
                         "reads") != std::string::npos);
  auto eos = load(R"(
[pipelines.gen]
source = { plugin = "datagen", count = 10 }
sink = { plugin = "kafka", topic = "out", exactly_once = true }
)");
  CHECK(eos.text().find("pipeline 'gen', sink: exactly_once needs the pipeline's source to be the kafka source "
                        "(its consumed offsets commit in the sink's transactions), and this one's is datagen: set "
                        "exactly_once = false") != std::string::npos);

  auto topics = load(R"(
[kafka.topics]
"bad topic!" = { partitions = 1 }
[pipelines.p]
source = { plugin = "datagen" }
sink = { plugin = "log" }
)");
  CHECK(topics.text().find("topic 'bad topic!' is not a Kafka topic name") != std::string::npos);
}

TEST_CASE("${VAR} is replaced in keys too, as in every string") {
  auto r = load(R"(
[kafka.topics]
"${PIPEHOST_TEST_UNSET_PREFIX:-acme}.dlq" = { partitions = 2 }
[pipelines."${PIPEHOST_TEST_UNSET_NAME:-sums}"]
source = { plugin = "datagen" }
sink = { plugin = "log" }
)");
  REQUIRE(r.diagnostics.empty());
  REQUIRE(r.config.topics.size() == 1);
  CHECK(r.config.topics[0].name == "acme.dlq");
  CHECK(r.config.topics[0].partitions == 2);
  REQUIRE(r.config.pipelines.size() == 1);
  CHECK(r.config.pipelines[0].name == "sums");
}
