// Help texts, one per command.
#pragma once

namespace pipehost::host::help {

inline constexpr const char* kMain = R"(pipehost - run streaming pipelines from TOML definitions

Usage:
  pipehost run FILE... [options]        run every pipeline in the files until they end
  pipehost validate FILE... [options]   check the files and their plugin options, run nothing
  pipehost plugins [NAME] [options]     list installed plugins, or show one with its options
  pipehost registry [--listen HOST:PORT]  serve an in-memory schema registry (Confluent REST API)
  pipehost tap PIPELINE [--stage S] [--limit N] [--timeout S] [--admin HOST:PORT]
                                        print records passing a stage of a running pipehost
  pipehost positions FILE... --pipeline NAME [--reset-to WHERE [--execute]]
                                        a Kafka-sourced pipeline's offsets and lag; reset them
  pipehost top [--admin HOST:PORT] [--interval S] [--once]
                                        live rates, lag and CPU per pipeline and stage
  pipehost replay FILE... --pipeline NAME
                                        feed a pipeline's dead letters back through it
  pipehost --version
  pipehost COMMAND --help               help for one command

Exit codes:
  0  success (every pipeline ended, or drained cleanly after SIGINT/SIGTERM)
  1  a pipeline failed (its message is printed at the end; the others ran on)
  2  invalid command line or config (every problem is printed with file:line:column)
  3  a service could not be reached at start (Kafka broker, schema registry, Redis...)
  130  a second SIGINT/SIGTERM ended it at once (what was in flight is read again next run)

Environment:
  PIPEHOST_PLUGIN_PATH   colon-separated folders searched for plugins before the built-in one
  PIPEHOST_ENV           default for --env
)";

inline constexpr const char* kRun = R"(Usage: pipehost run FILE... [options]

Runs every pipeline defined in FILE... (merged in order). A bounded source (e.g.
datagen with count = 1000) ends its pipeline; pipehost exits when every pipeline has
ended. SIGINT/SIGTERM drain in-flight records, flush sinks and commit; a second signal
exits at once. SIGHUP reads the files again: pipelines whose definition changed restart,
new ones start, removed ones stop, the others run on; a file with a problem changes
nothing (docs/operations.md).

Options:
  --env NAME            merge <folder of the first FILE>/env/NAME.toml over the files
                        (connection facts: [connections], [kafka], schema_registry; no pipelines)
  --set PATH=VALUE      override one value, e.g. --set pipeline.sums.tasks=3 or
                        --set pipeline.produce.source.count=5000 (VALUE is TOML, or a string);
                        a stage of a list as transforms[0] (or transforms.0); a table VALUE
                        merges key by key into the table there, as an overlay file does
  --pipeline NAME       run only this pipeline (repeatable); e.g. a second process
                        running just the consumer to share its group's partitions
  --plugin-path DIR     search DIR for plugins first (repeatable)
  --watch               reload when a config file changes (as SIGHUP does), checked
                        every second
  --log-level LEVEL     debug, info (default), warn, error (changeable while running:
                        PUT /log-level on the admin endpoint)
  --log-format FORMAT   text (default) or json: one object per line with time, level,
                        pipeline, stage, task and message, for log shippers
  --no-progress         no progress line on a terminal (log lines instead)
  --admin HOST:PORT     serve /health, /ready, /metrics (Prometheus), /pipelines (and
                        their tap, read by `pipehost tap`), POST /pipelines/NAME/
                        pause|resume|restart and PUT /log-level (or admin = "HOST:PORT")
  --stats FILE          at exit, write per-pipeline records and end-to-end latency
                        (record timestamp to sink acknowledgement) as JSON
)";

inline constexpr const char* kValidate = R"(Usage: pipehost validate FILE... [options]

Loads the files like `run` does (overlay, --set, ${VAR} interpolation), checks every
pipeline, stage and option against the installed plugins and each stage's own checks
(a Redis URL that does not parse, a protobuf message that is not in the schemas, empty
topics...), and prints every problem with file:line:column. Runs nothing.

Options: --env NAME, --set PATH=VALUE, --plugin-path DIR (as for run)
  --connect             also run the checks that need services: Kafka answers, Redis
                        answers, ... (`run` always does them before starting)

Exit code 0 when valid, 2 on a problem in the files, 3 when --connect finds a service
that cannot be used.
)";

inline constexpr const char* kPlugins = R"(Usage: pipehost plugins [NAME] [--plugin-path DIR] [--markdown]

Without NAME: every installed plugin with its components, and every library on the
plugin path that was refused and why. With NAME (a plugin or a component): its
description, options (type, default, whether required, what it does) and an example.
--markdown: the whole configuration reference (the file's own keys and every
component's options) as Markdown, as in docs/plugins.md.
)";

inline constexpr const char* kTap = R"(Usage: pipehost tap PIPELINE [--stage STAGE] [--limit N] [--timeout SECONDS] [--admin HOST:PORT]

Prints the next N records (default 10) that leave STAGE of PIPELINE in a running
pipehost, one JSON object per line: stage, task, topic/partition/offset, timestamp, key,
headers, and the decoded value (or the payload: a string when it is UTF-8, else base64).
STAGE is source, transforms[i] or sink (default: sink, what the sink is handed). Gives up
after --timeout seconds (default 30, at most 3600) when fewer records pass; --limit is at
most 100000. While 8 MiB of lines wait for this command to read them, the records passing
meanwhile are not printed. The stream ends early, said on stderr, when the pipeline ends,
a reload replaces it or the process stops. A process serves 4 taps at once.

It asks the process's admin endpoint (GET /pipelines/PIPELINE/tap), so that process must
run with --admin HOST:PORT (default here: 127.0.0.1:9464). With admin_token set, export
PIPEHOST_ADMIN_TOKEN.

Exit code 0 when done, 1 when stdout cannot be written or 4 taps are open already, 2
for an unknown pipeline or stage or a refused token, 3 when the endpoint cannot be reached.
)";

inline constexpr const char* kPositions = R"(Usage: pipehost positions FILE... --pipeline NAME [--reset-to WHERE [--execute]] [--env NAME] [--set PATH=VALUE]

For a pipeline whose source is the kafka source, prints each partition of its topics:
the consumer group's committed offset, the partition's start and end, and the lag (end
minus committed). Reads the cluster of the file's [kafka] brokers; running or stopped.

--reset-to WHERE shows where the group would resume instead: earliest, latest, an offset
(e.g. 1500, clamped to each partition's range) or an RFC 3339 time (e.g.
2026-12-01T09:00:00Z: the first record at or after it). Nothing changes without
--execute, which commits those offsets and is refused while the group has an active
member (stop every process running the pipeline first) — as kafka-consumer-groups
--reset-offsets does. A sink that stores positions with its data (redis_sum, sqlite,
postgres exactly-once) resumes from those instead.

Exit code 0 when done, 1 when the group is active or the commit failed, 2 for a bad
argument or a pipeline without a Kafka source, 3 when the cluster cannot be reached.
)";

inline constexpr const char* kTop = R"(Usage: pipehost top [--admin HOST:PORT] [--interval SECONDS] [--once]

A live view of a running pipehost (as `vector top`): per pipeline its state, records
read and acknowledged per second, rejected, in flight, Kafka lag and restarts; per stage
records in and out per second, rejected and the share of a CPU it used; a failure or a
stall underneath. Refreshed every --interval seconds (default 1) until Ctrl-C; --once
prints one table (the rates over one interval) and exits.

It reads the process's admin endpoint (default 127.0.0.1:9464, the address given to
`run --admin`); with admin_token set, export PIPEHOST_ADMIN_TOKEN.

Exit code 0 when stopped (Ctrl-C), 1 when stdout cannot be written, 2 for a refused
token, 3 when the endpoint cannot be reached.
)";

inline constexpr const char* kReplay = R"(Usage: pipehost replay FILE... --pipeline NAME [--env NAME] [--set PATH=VALUE]

Feeds the records of pipeline NAME's dead-letter topic back through its transforms and
sink, as if its source had read them again — after the cause that rejected them is fixed
(a schema registered, a table widened, a rule corrected). It reads from where the last
replay stopped (group NAME-replay; an exactly-once sink's own stored positions first) up
to the topic's end when it started, then exits. A record that fails again goes back to
the dead-letter topic with its new reason, for a later replay; nothing is read twice.

A dead letter whose payload a stage had replaced before the one that rejected it
(header pipehost.payload = "stage") cannot be fed to the first stage again: it is left in
the topic and counted. Run it while the pipeline is stopped or running: it is a separate
consumer. Needs a real cluster (the embedded broker lived in the process that wrote them).

Exit codes as for run.
)";

inline constexpr const char* kRegistry = R"(Usage: pipehost registry [--listen HOST:PORT]

Serves pipehost's in-memory schema registry over Confluent's REST API (default
127.0.0.1:8081) until SIGINT/SIGTERM, for development without a real registry:
POST /subjects/S/versions, GET /schemas/ids/ID, GET /subjects, GET /subjects/S/versions,
GET /subjects/S/versions/(N|latest|-1), POST /subjects/S, GET and PUT /config[/S],
POST /compatibility/subjects/S/versions/V. It checks no compatibility (level NONE: every
schema is compatible) and deletes nothing. Schemas are not kept across restarts.
)";

}  // namespace pipehost::host::help
