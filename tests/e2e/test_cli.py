"""The command line as a user meets it: help, validation errors, plugins that fail,
the error policies. Embedded broker only; no external service."""
import json
import os
import re
import tempfile

from support import CONFIGS, SOURCE_DIR, TEST_PLUGIN_DIR, pipehost, run_tests, write_config


def test_help_and_version():
    r = pipehost("--help", check=0)
    assert "Exit codes" in r.stdout and "pipehost run FILE" in r.stdout
    for command in ("run", "validate", "plugins"):
        r = pipehost(command, "--help", check=0)
        assert f"Usage: pipehost {command}" in r.stdout
    assert pipehost("--version", check=0).stdout.startswith("pipehost ")
    r = pipehost("rn", check=2)
    assert "did you mean 'run'?" in r.stderr
    r = pipehost("help", "valdate", check=2)
    assert "did you mean 'validate'?" in r.stderr
    # Another command's option is refused, not ignored.
    r = pipehost("run", os.path.join(CONFIGS, "food.toml"), "--execute", check=2)
    assert "--execute is an option of positions, not of run" in r.stderr, r.stderr
    # An admin address without a port is refused, not taken for port 127.
    for command in (["run", os.path.join(CONFIGS, "food.toml")], ["tap", "counter"], ["top"]):
        r = pipehost(*command, "--admin", "127.0.0.1", check=2)
        assert "--admin 127.0.0.1 is not HOST:PORT" in r.stderr, r.stderr


def test_the_readme_sample_config_validates_and_config_mistakes_are_named_at_their_line():
    readme = open(os.path.join(SOURCE_DIR, "README.md")).read()
    sample = readme.split("A config file:\n\n```toml\n", 1)[1].split("```", 1)[0]
    env = {"KAFKA_BROKERS": "embedded", "SCHEMA_REGISTRY_URL": "embedded"}
    r = pipehost("validate", write_config(sample), env=env, check=0)
    assert "valid (2 pipeline(s): produce, sums)" in r.stdout, r.stdout + r.stderr
    # Accepted before, failing (or hanging) only once running.
    config = write_config("""schema_registry = "notaurl"
admin = "127.0.0.1:70000"
plugin_path = "no-such-folder"
[kafka]
brokers = ""
properties = { "bogus.prop" = "1" }
[pipelines.p]
source = { plugin = "datagen", count = 1 }
sink = { plugin = "log" }
""")
    r = pipehost("validate", config, check=2)
    for line, what in ((1, "schema_registry is 'notaurl'"), (2, "key 'admin'"), (3, "plugin_path: folder"),
                       (5, "brokers is empty"), (6, "[kafka.properties] bogus.prop: No such configuration property")):
        assert f"config.toml:{line}:" in r.stderr and what in r.stderr, r.stderr
    r = pipehost("validate", write_config("pipelines = 3\n"), check=2)
    assert "config.toml:1:13: error: 'pipelines' must be a table" in r.stderr, r.stderr
    # A name the admin API's paths and the logs' prefixes could not hold.
    r = pipehost("validate", write_config('[pipelines."team-a/orders"]\nsource = { plugin = "datagen", count = 1 }\n'
                                          'sink = { plugin = "log" }\n'), check=2)
    assert "config.toml:1:1: error: pipeline 'team-a/orders': a pipeline name must not" in r.stderr, r.stderr


def test_plugins_lists_components_and_options():
    r = pipehost("plugins", check=0)
    for name in ("datagen", "kafka", "log", "file"):
        assert f"{name} 0.2.0" in r.stdout, r.stdout
    r = pipehost("plugins", "datagen", check=0)
    assert "count" in r.stdout and "records in all tasks together" in r.stdout
    assert "example:" in r.stdout
    r = pipehost("plugins", "datagn", check=2)
    assert "did you mean 'datagen'?" in r.stderr


def test_unknown_plugin_and_bad_options_are_reported_together_before_anything_runs():
    out = os.path.join(tempfile.mkdtemp(), "never.jsonl")
    config = write_config(f"""
[pipelines.a]
source = {{ plugin = "datagen", count = 10, rate = "fast" }}
sink = {{ plugin = "file", path = "{out}" }}

[pipelines.b]
source = {{ plugin = "datagn" }}
sink = {{ plugin = "file", pth = "{out}" }}

[http]
listen = "127.0.0.1:1"
[[http.routes]]
path = "/counts"
methods = ["get"]
plugin = "sqlite_query"
database = "{out}.sqlite"
query = "SELECT 1"
""")
    r = pipehost("run", config, check=2)
    assert "option 'methods' cannot hold \"get\"; allowed: GET, POST, PUT, DELETE, PATCH" in r.stderr
    assert f"{config}:3:" in r.stderr and "option 'rate' must be a number, not a string" in r.stderr
    assert "unknown source plugin 'datagn'; did you mean 'datagen'?" in r.stderr
    assert "unknown option 'pth' for plugin 'file'; did you mean 'path'?" in r.stderr
    assert "plugin 'file' needs option 'path'" in r.stderr
    assert "nothing was started" in r.stderr
    assert not os.path.exists(out)


def test_a_plugin_built_against_another_abi_is_refused_with_both_versions():
    r = pipehost("plugins", "--plugin-path", TEST_PLUGIN_DIR, check=0)
    line = next(l for l in r.stdout.splitlines() if "bad_abi.so" in l)
    with open(os.path.join(os.path.dirname(CONFIGS), "sdk", "include", "pipehost", "abi.hpp")) as f:
        version = re.search(r"#define PIPEHOST_ABI_VERSION (\d+)u", f.read()).group(1)
    assert "ABI version 1," in line and f"this pipehost uses ABI version {version}" in line
    assert "rebuild" in line
    # Same ABI version and libstdc++, another std::string layout.
    line = next(l for l in r.stdout.splitlines() if "other_string_abi.so" in l)
    assert "another C++ standard library" in line and "cxx11 string 0" in line, line
    config = write_config("""
[pipelines.a]
source = { plugin = "bad_abi" }
sink = { plugin = "log" }
""")
    r = pipehost("validate", config, "--plugin-path", TEST_PLUGIN_DIR, check=2)
    assert "unknown source plugin 'bad_abi'" in r.stderr and "ABI version 1," in r.stderr


def failing_config(fail_at, out):
    return write_config(f"""
plugin_path = "{TEST_PLUGIN_DIR}"
[pipelines.good]
source = {{ plugin = "datagen", count = 500, seed = 1 }}
sink = {{ plugin = "file", path = "{out}" }}

[pipelines.bad]
source = {{ plugin = "faulty", fail_at = "{fail_at}" }}
sink = {{ plugin = "file", path = "{out}.bad" }}
""")


def test_a_plugin_that_fails_stops_only_its_pipeline():
    for fail_at, message in [("construct", "faulty source refuses to be built"),
                             ("start", "faulty source cannot start"),
                             ("poll", "faulty source broke mid-run")]:
        out = os.path.join(tempfile.mkdtemp(), "good.jsonl")
        r = pipehost("run", failing_config(fail_at, out), "--no-progress", check=1)
        assert f"pipeline 'bad' stopped: source (faulty) failed: {message}" in r.stderr, r.stderr
        assert "1 of 2 pipeline(s) failed" in r.stderr
        with open(out) as f:
            assert len(f.readlines()) == 500, f"good pipeline did not finish when bad failed at {fail_at}"


def policy_config(policy, out):
    return write_config(f"""
plugin_path = "{TEST_PLUGIN_DIR}"
[pipelines.main]
on_error = "{policy}"
source = {{ plugin = "datagen", count = 100, seed = 5 }}
transforms = [ {{ plugin = "poison", every = 10 }} ]
sink = {{ plugin = "file", path = "{out}" }}
""")


def test_error_policy_skip_fail_and_dead_letter():
    out = os.path.join(tempfile.mkdtemp(), "skip.jsonl")
    r = pipehost("run", policy_config("skip", out), "--no-progress", check=0)
    assert len(open(out).readlines()) == 90
    assert "skipped a record: poison record 10" in r.stderr
    assert "(further rejected records: every thousandth is logged" in r.stderr  # at the 10th
    assert "main: 100 records acknowledged, 10 of them rejected;" in r.stderr

    out = os.path.join(tempfile.mkdtemp(), "fail.jsonl")
    r = pipehost("run", policy_config("fail", out), "--no-progress", check=1)
    assert "rejected: poison record 10" in r.stderr and 'on_error = "fail"' in r.stderr


def test_dead_letter_topic_gets_the_record_with_headers():
    out = os.path.join(tempfile.mkdtemp(), "main.jsonl")
    dlq = os.path.join(tempfile.mkdtemp(), "dlq.jsonl")
    config = policy_config("dead_letter", out)
    with open(config, "a") as f:
        f.write(f"""
[pipelines.dlq]
end_after = "main"
source = {{ plugin = "kafka", topics = ["main-dlq"], group = "dlq-reader" }}
sink = {{ plugin = "file", path = "{dlq}", with_headers = true, with_key = true }}
""")
    r = pipehost("run", config, "--no-progress", check=0, timeout=60)
    assert len(open(out).readlines()) == 90
    assert "dead-lettered (to main-dlq) a record: poison record 10" in r.stderr
    assert "main: 100 records acknowledged, 10 of them rejected (10 dead-lettered)" in r.stderr
    rows = [json.loads(l) for l in open(dlq)]
    assert len(rows) == 10, rows
    for row in rows:
        h = row["headers"]
        assert h["pipehost.pipeline"] == "main"
        assert h["pipehost.stage"] == "transforms[0]"
        assert h["pipehost.error"].startswith("poison record ")
        assert row["key"].startswith("GB")  # the original key, untouched


def test_admin_endpoint_health_metrics_pause_and_resume():
    import signal
    import time
    import urllib.error
    import urllib.parse
    import urllib.request

    from support import free_port, start_pipehost, wait_until
    port = free_port()
    out = os.path.join(tempfile.mkdtemp(), "admin.jsonl")
    config = write_config(f"""
admin = "127.0.0.1:{port}"
admin_token = "${{TEST_ADMIN_TOKEN}}"
[pipelines.slow]
source = {{ plugin = "datagen", count = 0, rate = 500, seed = 1 }}
sink = {{ plugin = "file", path = "{out}" }}
""")
    p = start_pipehost("run", config, "--no-progress", env={"TEST_ADMIN_TOKEN": "s3cret"})
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Bearer s3cret"}
    as_json = {"Content-Type": "application/json", **auth}

    def call(path, data=None, headers=auth, host=None, method=None):
        request = urllib.request.Request(base + path, data=data, headers=dict(headers), method=method)
        if host:
            request.add_header("Host", host)
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def up():  # the endpoint answers before the pipelines are made: until then, none listed
        try:
            status, body = call("/health", headers={})  # open for probes
            return status == 200 and json.loads(body)["pipelines"] == {"slow": "running"}
        except OSError:
            return False
    try:
        wait_until(up, 15, "the admin endpoint to list the pipeline running")
        wait_until(lambda: 'pipehost_records_acknowledged_total{pipeline="slow"}' in call("/metrics")[1], 10, "metrics")
        # What a browser could send cross-site, and what it cannot pass.
        assert call("/pipelines", headers={})[0] == 401
        assert call("/pipelines", headers={"Authorization": "Bearer wrong"})[0] == 401
        form = {"Content-Type": "application/x-www-form-urlencoded", **auth}
        assert call("/pipelines/slow/pause", data=b"", headers=form)[0] == 415
        assert call("/pipelines/slow/pause", data=b"{}", headers=as_json, host="evil.example:80")[0] == 403
        assert json.loads(call("/pipelines")[1])[0]["state"] == "running"
        # Errors say why, as JSON: a method not served, a POST without a body, no such path.
        status, body = call("/pipelines/slow", headers=as_json, method="DELETE")
        assert status == 405 and "DELETE is not served here" in json.loads(body)["error"], body
        # `curl -X POST URL` sends no Content-Length: no body (it waited 5 s, then got 400).
        import http.client
        bare = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        bare.putrequest("POST", "/pipelines/slow/resume")
        for name, value in as_json.items():
            bare.putheader(name, value)
        bare.endheaders()
        answer = bare.getresponse()
        status, body = answer.status, answer.read().decode()
        bare.close()
        assert status == 200 and json.loads(body)[0]["state"] == "running", body
        status, body = call("/nowhere")
        assert status == 404 and "no such endpoint: /nowhere" in json.loads(body)["error"], body
        status, body = call("/pipelines/slow/pause", data=b"{}", headers=as_json)
        assert status == 200, body
        assert json.loads(body)[0]["state"] == "paused"
        read = lambda: json.loads(call("/pipelines")[1])[0]["records_read"]
        counts = [read()]

        def settled():  # the batch in flight landed: the count stood still for 0.5 s
            time.sleep(0.5)
            counts.append(read())
            return counts[-1] == counts[-2]
        wait_until(settled, 10, "the batch in flight to land")
        before = counts[-1]
        time.sleep(1)
        assert json.loads(call("/pipelines")[1])[0]["records_read"] == before
        # top and tap without the token: refused (exit 2), and told which variable to set.
        from support import pipehost as run_pipehost
        for command in (["top", "--once"], ["tap", "slow", "--limit", "1", "--timeout", "2"]):
            r = run_pipehost(*command, "--admin", f"127.0.0.1:{port}", check=None, timeout=30)
            assert r.returncode == 2 and "export PIPEHOST_ADMIN_TOKEN" in r.stderr, (command, r.stderr)
        call("/pipelines/slow/resume", data=b"{}", headers=as_json)
        wait_until(lambda: json.loads(call("/pipelines")[1])[0]["records_read"] > before, 10, "resumed reading")
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert "s3cret" not in err
    finally:
        if p.poll() is None:
            p.kill()


def test_every_environment_overlay_fits_every_shipped_config():
    # An overlay swaps connection facts, never a pipeline's shape: applied to any config
    # of configs/, the result validates and has the same pipelines.
    import glob
    env = {"KAFKA_BROKERS": "broker:9092", "SCHEMA_REGISTRY_URL": "http://registry:8081",
           "REDIS_URL": "redis://redis:6379", "DATABASE_URL": "postgresql://pg/db"}
    configs = sorted(glob.glob(os.path.join(CONFIGS, "*.toml")))
    overlays = sorted(glob.glob(os.path.join(CONFIGS, "env", "*.toml")))
    assert len(configs) >= 2 and overlays
    for config in configs:
        plain = pipehost("validate", config, env=env, check=0).stdout
        for overlay in overlays:
            name = os.path.splitext(os.path.basename(overlay))[0]
            r = pipehost("validate", config, "--env", name, env=env, check=0)
            assert r.stdout.split(": valid")[1] == plain.split(": valid")[1], (config, name)


def test_validate_connect_asks_the_schema_registry_the_config_names():
    import socket
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    config = os.path.join(CONFIGS, "transactions.toml")
    env = {"KAFKA_BROKERS": "embedded", "SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{closed}"}
    r = pipehost("validate", "--connect", config, env=env, check=3)
    assert f"schema registry http://127.0.0.1:{closed}/subjects unreachable" in r.stderr, r.stderr
    assert "every service answered" not in r.stdout
    # Without --connect nothing is asked; with the embedded registry there is nothing to ask.
    pipehost("validate", config, env=env, check=0)
    r = pipehost("validate", "--connect", config, env={**env, "SCHEMA_REGISTRY_URL": "embedded"}, check=0)
    assert "every service answered" in r.stdout
    # A config whose stages do not use the registry (seed 003: JSON into SQLite) does not
    # need it, wherever the overlay points it.
    r = pipehost("validate", "--connect", os.path.join(CONFIGS, "food.toml"), "--env", "real", env=env, check=0)
    assert "every service answered" in r.stdout, r.stderr


def test_every_plugin_folder_has_an_example_that_validates_and_runs():
    # A smoke test of the examples the docs show (exit 0 for each); what each plugin does
    # to data is checked by its own tests and the seed systems' end-to-end tests.
    import glob
    from support import SOURCE_DIR
    examples = sorted(glob.glob(os.path.join(SOURCE_DIR, "plugins", "*", "example.toml")))
    folders = sorted(glob.glob(os.path.join(SOURCE_DIR, "plugins", "*", "CMakeLists.txt")))
    assert len(examples) == len(folders), (examples, folders)
    embedded = {"KAFKA_BROKERS": "", "SCHEMA_REGISTRY_URL": "", "REDIS_URL": ""}
    for example in examples:
        pipehost("validate", example, env=embedded, check=0)
        if "redis" not in example and "postgres" not in example:  # the rest need no server
            pipehost("run", example, "--no-progress", env=embedded, check=0, timeout=60)


def test_registry_command_serves_the_confluent_api_to_confluent_kafka_python():
    import signal
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    from support import free_port, start_pipehost, wait_until
    port = free_port()
    p = start_pipehost("registry", "--listen", f"127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            return urllib.request.urlopen(url + "/subjects", timeout=2).status == 200
        except OSError:
            return False
    try:
        wait_until(up, 10, "pipehost registry")
        clients = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clients")
        script = f"""
import sys; sys.path.insert(0, {clients!r})
from transactions_pb import transaction_class
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import SerializationContext, MessageField
T = transaction_class(); t = T(); t.account_number = "A"; t.amount = 2.5
s = ProtobufSerializer(T, SchemaRegistryClient({{"url": {url!r}}}), {{"use.deprecated.format": False}})
print(s(t, SerializationContext("probe", MessageField.VALUE)).hex())
"""
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        framed = bytes.fromhex(r.stdout.strip())
        schema_id = int.from_bytes(framed[1:5], "big")
        assert framed[0] == 0 and schema_id > 0
        body = json.loads(urllib.request.urlopen(f"{url}/schemas/ids/{schema_id}").read())
        assert body["schemaType"] == "PROTOBUF" and body["schema"]
        subjects = json.loads(urllib.request.urlopen(url + "/subjects").read())
        assert "probe-value" in subjects
        latest = json.loads(urllib.request.urlopen(url + "/subjects/probe-value/versions/latest").read())
        assert latest["id"] == schema_id and latest["version"] == 1
        # Avro too: confluent-kafka's AvroSerializer registers the seed 004 schema, and its
        # AvroDeserializer reads the value back through the same registry.
        avsc = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs", "schemas",
                            "producer-to-processor.avsc")
        script = f"""
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer, AvroDeserializer
from confluent_kafka.serialization import SerializationContext, MessageField
registry = SchemaRegistryClient({{"url": {url!r}}})
context = SerializationContext("avro-probe", MessageField.VALUE)
event = {{"origin_service_id": "1", "origin_service_type": "t", "destination_service_type": "FINANCE",
          "event_timestamp": 1733011200123, "payload": "p"}}
framed = AvroSerializer(registry, open({avsc!r}).read())(event, context)
assert AvroDeserializer(registry)(framed, context) == event
print(framed.hex())
"""
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        avro_id = int.from_bytes(bytes.fromhex(r.stdout.strip())[1:5], "big")
        body = json.loads(urllib.request.urlopen(f"{url}/schemas/ids/{avro_id}").read())
        assert body.get("schemaType", "AVRO") == "AVRO" and "ProducerToProcessor" in body["schema"]

        # Odd requests get Confluent's answers (404 with an error code, 422), never a bare 500.
        def ask(path, body=None):
            request = urllib.request.Request(url + path, data=None if body is None else json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=5) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())
        assert ask("/schemas/ids/4294967295") == (404, {"error_code": 40403, "message": "Schema not found"})
        assert ask("/subjects/probe-value/versions/99999999999")[1]["error_code"] == 40402
        assert ask("/subjects/probe-value", ["not", "an", "object"])[1]["error_code"] == 40403
        status, answer = ask("/subjects/null-type/versions", {"schema": '"string"', "schemaType": None})
        assert status == 200 and ask(f"/schemas/ids/{answer['id']}")[1] == {"schema": '"string"'}
        assert ask("/subjects/bad-type/versions", {"schema": '"string"', "schemaType": 7})[0] == 422
        status, answer = ask("/subjects/bad-avro/versions", {"schema": "not a schema"})  # not JSON
        assert status == 422 and answer["error_code"] == 42201, answer
        # A .proto with an import of its own: the serializer registers the import under its
        # path and the schema with references, which the registry keeps and serves.
        script = f"""
import sys; sys.path.insert(0, {clients!r})
from payments_producer import payment_class, serializer
from confluent_kafka.serialization import SerializationContext, MessageField
Payment = payment_class()
print(serializer(Payment, {url!r})(Payment(id="p1"), SerializationContext("pay", MessageField.VALUE)).hex())
"""
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        pay_id = int.from_bytes(bytes.fromhex(r.stdout.strip())[1:5], "big")
        status, body = ask(f"/schemas/ids/{pay_id}")
        assert status == 200 and "acme/money.proto" in [ref["name"] for ref in body["references"]], body
        money = next(ref for ref in body["references"] if ref["name"] == "acme/money.proto")
        status, version = ask(f"/subjects/{urllib.parse.quote(money['subject'], safe='')}/versions/{money['version']}")
        assert status == 200 and version["schemaType"] == "PROTOBUF", version
        # A reference to nothing registered is refused (Confluent: 422), not stored.
        status, answer = ask("/subjects/dangling/versions", {"schema": body["schema"], "schemaType": "PROTOBUF",
                                                             "references": [{"name": "acme/money.proto",
                                                                             "subject": "nowhere", "version": 1}]})
        assert status == 422 and "nowhere" in answer["message"], answer
        # An Avro schema is the same schema whatever its whitespace and key order (Confluent
        # compares a parsed form): the same id, and the lookup finds its version.
        record = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}
        status, first = ask("/subjects/canon/versions", {"schema": json.dumps(record)})
        assert status == 200, first
        reordered = '{ "fields": [ {"type": "long", "name": "a"} ],\n  "name": "R", "type": "record" }'
        assert ask("/subjects/canon/versions", {"schema": reordered}) == (200, {"id": first["id"]})
        status, found = ask("/subjects/canon", {"schema": reordered})
        assert status == 200 and found["version"] == 1 and found["id"] == first["id"], found
        other = dict(record, fields=[{"name": "a", "type": "int"}])
        assert ask("/subjects/canon/versions", {"schema": json.dumps(other)})[1]["id"] != first["id"]
        assert ask("/subjects/canon", {"schema": reordered, "schemaType": "JSON"})[0] == 404
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()


run_tests(globals())
