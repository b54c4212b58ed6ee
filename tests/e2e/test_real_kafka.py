"""The Kafka plugins against the real broker (Apache Kafka, KRaft, from scripts/services)
as well as the embedded one; kcat on the other side; scale-out over two processes with
kill -9; a broker restart mid-stream."""
import collections
import json
import os
import signal
import tempfile
import time

from support import (CONFIGS, RedisServer, kcat_consume, kcat_payloads, pipehost, reference_transactions,
                     require_env, run_tests, services, start_pipehost, totals_of, unique,
                     wait_until, write_config)

JAGO = os.path.join(CONFIGS, "jago.toml")


def round_trip_config(brokers, topic, out, count, seed, registry="embedded"):
    return write_config(f"""
schema_registry = "{registry}"
[kafka]
brokers = "{brokers}"
[kafka.topics]
"{topic}" = {{ partitions = 3 }}

[pipelines.produce]
source = {{ plugin = "datagen", count = {count}, seed = {seed} }}
transforms = [ {{ plugin = "protobuf_encode", message = "Transaction", topic = "{topic}" }} ]
sink = {{ plugin = "kafka", topic = "{topic}" }}

[pipelines.read]
tasks = 3
end_after = "produce"
source = {{ plugin = "kafka", topics = ["{topic}"], group = "{topic}-readers" }}
transforms = [ {{ plugin = "protobuf_decode" }} ]
sink = {{ plugin = "file", path = "{out}", with_key = true }}
""")


def test_round_trip_on_the_embedded_and_the_real_broker():
    seed, count = 21, 3000
    expected = sorted(t["transaction_id"] for t in reference_transactions(seed, count))
    real = (require_env("KAFKA_BROKERS"), require_env("SCHEMA_REGISTRY_URL"))
    for brokers, registry in (("embedded", "embedded"), real):
        topic = unique("round-trip")
        out = os.path.join(tempfile.mkdtemp(), "out.jsonl")
        pipehost("run", round_trip_config(brokers, topic, out, count, seed, registry), "--no-progress",
                 check=0, timeout=120)
        rows = [json.loads(line) for line in open(out)]
        # The file sink is at-least-once: a rebalance among the three tasks may deliver a
        # record twice, never lose one.
        ids = [r["value"]["transaction_id"] for r in rows]
        missing = set(expected) - set(ids)
        assert not missing, f"{brokers}: {len(missing)} records lost"
        assert len(set(ids)) == len(expected) and len(ids) >= len(expected), brokers
        assert all(r["key"] == r["value"]["account_number"] for r in rows)

    # kcat reads what pipehost produced to the real broker: every record, keyed by
    # account, each account in exactly one partition.
    lines = kcat_consume(require_env("KAFKA_BROKERS"), topic, "%p %k\\n")
    assert len(lines) == count
    partitions_of = collections.defaultdict(set)
    for line in lines:
        partition, key = line.split(" ")
        partitions_of[key].add(partition)
    assert len(partitions_of) == 20
    assert all(len(p) == 1 for p in partitions_of.values())
    # and the values carry Confluent framing: magic byte 0, then a 4-byte schema id
    values = kcat_payloads(require_env("KAFKA_BROKERS"), topic)
    assert len(values) == count
    assert all(v[0] == 0 and int.from_bytes(v[1:5], "big") > 0 for v in values)


def test_the_in_memory_registry_is_refused_with_a_real_broker():
    """Its ids would die with the process while the records framed with them stay."""
    topic = unique("no-registry")
    out = os.path.join(tempfile.mkdtemp(), "out.jsonl")
    r = pipehost("run", round_trip_config(require_env("KAFKA_BROKERS"), topic, out, 10, 1), "--no-progress",
                 timeout=120)
    assert r.returncode == 2, r.stderr[-3000:]  # a config problem, found before anything starts
    assert 'uses the schema registry, but schema_registry is "embedded" (an in-memory registry' in r.stderr, r.stderr[-3000:]
    assert "SCHEMA_REGISTRY_URL" in r.stderr
    assert kcat_payloads(require_env("KAFKA_BROKERS"), topic) == []  # nothing framed was written
    # validate says so too, offline, at the stage that uses it.
    r = pipehost("validate", round_trip_config(require_env("KAFKA_BROKERS"), topic, out, 10, 1), timeout=60)
    assert r.returncode == 2 and "transforms[0]: uses the schema registry" in r.stderr, r.stderr[-3000:]


def jago_args(topic, seed, count, rate, *more):
    args = ["--set", f"kafka.topics={{\"{topic}\"={{partitions=3}}}}",
            "--set", f"pipeline.producer.source.seed={seed}",
            "--set", f"pipeline.producer.source.count={count}",
            "--set", f"pipeline.producer.source.rate={rate}",
            "--set", f"pipeline.producer.transforms.0.topic={topic}",
            "--set", f"pipeline.producer.sink.topic={topic}",
            "--set", f"pipeline.consumer.source.topics=[\"{topic}\"]",
            "--set", f"pipeline.consumer.source.group={topic}-group",
            "--no-progress"]
    for m in more:
        args += ["--set", m]
    return args


def applied(redis):
    values = redis.cli("HVALS", "pipehost:positions:consumer").split()
    return sum(int(v) for v in values) if values else 0


def test_two_processes_share_the_group_and_survive_kill_9_of_one():
    seed, count = 22, 40000
    expected = {a: f"{t:.2f}" for a, t in totals_of(reference_transactions(seed, count)).items()}
    topic = unique("scale-out")
    with RedisServer() as redis:
        env = {"REDIS_URL": redis.url}
        args = jago_args(topic, seed, count, 5000)
        consumers = [start_pipehost("run", JAGO, "--pipeline", "consumer", *args, env=env)
                     for _ in range(2)]
        producer = start_pipehost("run", JAGO, "--pipeline", "producer", *args, env=env)
        try:
            wait_until(lambda: applied(redis) > 10000, 90, "both consumers at work")
            consumers[0].send_signal(signal.SIGKILL)
            consumers[0].wait()
            _, err = producer.communicate(timeout=120)
            assert producer.returncode == 0, err[-2000:]
            wait_until(lambda: applied(redis) == count, 120, "the survivor to finish every partition")
            assert {a: redis.cli("GET", a) for a in expected} == expected
            consumers[1].send_signal(signal.SIGTERM)
            _, err = consumers[1].communicate(timeout=60)
            assert consumers[1].returncode == 0, err[-2000:]
            assert "SIGTERM: draining" in err
        finally:
            for p in consumers + [producer]:
                if p.poll() is None:
                    p.kill()


def test_broker_restart_mid_stream_loses_nothing():
    seed, count = 23, 30000
    expected = {a: f"{t:.2f}" for a, t in totals_of(reference_transactions(seed, count)).items()}
    topic = unique("restart")
    with RedisServer() as redis:
        p = start_pipehost("run", JAGO, *jago_args(topic, seed, count, 3000),
                           env={"REDIS_URL": redis.url})
        try:
            wait_until(lambda: applied(redis) > 5000, 90, "records flowing")
            services("stop", "kafka")
            time.sleep(2)
            services("start", "kafka")
            _, err = p.communicate(timeout=240)
            assert p.returncode == 0, err[-3000:]
            assert applied(redis) == count, f"{applied(redis)} of {count} applied\n{err[-6000:]}"
            assert {a: redis.cli("GET", a) for a in expected} == expected
        finally:
            if p.poll() is None:
                p.kill()
            services("start", "kafka")


run_tests(globals())
