"""Seed 000/001 against real Kafka, a real schema registry and Redis, with third-party
clients on the other side: a confluent-kafka Python producer (ProtobufSerializer) feeding
pipehost's consumer, and pipehost's producer read by a confluent-kafka Python consumer
(ProtobufDeserializer)."""
import json
import os
import signal
import subprocess
import sys

from support import (CONFIGS, RedisServer, pipehost, reference_transactions, require_env,
                     run_tests, start_pipehost, totals_of, unique, wait_until)

JAGO = os.path.join(CONFIGS, "jago.toml")
CLIENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clients")


def client(script, *args, timeout=180):
    r = subprocess.run([sys.executable, os.path.join(CLIENTS, script), *map(str, args)],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{script} failed:\n{r.stderr[-3000:]}"
    return r.stdout


def topic_args(topic):
    return ["--set", f"kafka.topics={{\"{topic}\"={{partitions=3}}}}",
            "--set", f"pipeline.producer.transforms.0.topic={topic}",
            "--set", f"pipeline.producer.sink.topic={topic}",
            "--set", f"pipeline.consumer.source.topics=[\"{topic}\"]",
            "--set", f"pipeline.consumer.source.group={topic}-group",
            "--no-progress"]


def test_python_producer_then_pipehost_consumer_fills_redis_with_the_sums_it_sent():
    brokers, registry = require_env("KAFKA_BROKERS"), require_env("SCHEMA_REGISTRY_URL")
    topic, count = unique("py-producer"), 2000
    with RedisServer() as redis:
        consumer = start_pipehost("run", JAGO, "--pipeline", "consumer", *topic_args(topic),
                                  env={"REDIS_URL": redis.url})
        try:
            sent = json.loads(client("transactions_producer.py", brokers, registry, topic, count, 20, 7))
            assert len(sent) == 20

            def applied():
                values = redis.cli("HVALS", "pipehost:positions:consumer").split()
                return sum(int(v) for v in values) if values else 0
            wait_until(lambda: applied() == count, 120, "pipehost to apply every record")
            # redis-cli reads what pipehost wrote; the producer summed what it sent.
            assert {a: redis.cli("GET", a) for a in sent} == sent
            consumer.send_signal(signal.SIGTERM)
            _, err = consumer.communicate(timeout=60)
            assert consumer.returncode == 0, err[-3000:]
        finally:
            if consumer.poll() is None:
                consumer.kill()


def test_pipehost_producer_then_python_consumer_decodes_every_record():
    brokers = require_env("KAFKA_BROKERS")
    require_env("SCHEMA_REGISTRY_URL")
    topic, seed, count = unique("py-consumer"), 31, 1500
    pipehost("run", JAGO, "--pipeline", "producer", *topic_args(topic),
             "--set", f"pipeline.producer.source.seed={seed}",
             "--set", f"pipeline.producer.source.count={count}", check=0)
    rows = [json.loads(line) for line in
            client("transactions_consumer.py", brokers, topic, unique("py"), count).splitlines()]
    reference = reference_transactions(seed, count)
    assert len(rows) == count
    assert sorted(r["transaction_id"] for r in rows) == sorted(t["transaction_id"] for t in reference)
    assert all(r["key"] == r["account_number"] and r["seconds"] > 1_600_000_000 for r in rows)
    decoded = totals_of([{"account_number": r["account_number"], "amount": r["amount"]} for r in rows])
    assert decoded == totals_of(reference)


run_tests(globals())
