"""Seed 000/001 against real Kafka, a real schema registry and Redis, with third-party
clients on the other side: a confluent-kafka Python producer (ProtobufSerializer) feeding
pipehost's consumer, and pipehost's producer read by a confluent-kafka Python consumer
(ProtobufDeserializer)."""
import decimal
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from support import (CONFIGS, RedisServer, pipehost, reference_transactions, require_env,
                     run_tests, start_pipehost, totals_of, unique, wait_until, write_config)

JAGO = os.path.join(CONFIGS, "jago.toml")
CLIENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clients")
sys.path.insert(0, CLIENTS)
from transactions_pb import transaction_class  # noqa: E402
from transactions_producer import EXTRA_ACCOUNT  # noqa: E402


def client(script, *args, timeout=180):
    r = subprocess.run([sys.executable, os.path.join(CLIENTS, script), *map(str, args)],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{script} failed:\n{r.stderr[-3000:]}"
    return r.stdout


def real_services_config(pipelines, name):
    """A config file: the pipelines given, on the real Kafka and schema registry."""
    return write_config(f"""
schema_registry = "{require_env("SCHEMA_REGISTRY_URL")}"
[kafka]
brokers = "{require_env("KAFKA_BROKERS")}"
{pipelines}""", name=name)


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


def test_amounts_that_would_take_a_total_past_2_53_units_are_dead_lettered():
    # Hand-sent transactions whose amounts would take one account's total past 2^53
    # cents, the exact range of redis_sum's Lua script. Each such record goes to the
    # dead-letter topic and stops nothing; the account keeps every other amount, and the
    # other accounts are counted exactly once. Round 1 is sent before pipehost starts
    # (the overflow is in a partition's first batch, read from no stored position);
    # round 2 overflows the total already stored in Redis.
    brokers, registry = require_env("KAFKA_BROKERS"), require_env("SCHEMA_REGISTRY_URL")
    topic, count = unique("overflow"), 1500
    dlq = f"{topic}-dlq"
    rounds = [["60000000000000.00", "60000000000000.00", "5.00"],
              ["30000000000000.00", "20000000000000.00", "1000.00"]]
    limit = decimal.Decimal(2 ** 53) / 100
    total, refused = decimal.Decimal(0), []
    for a in map(decimal.Decimal, rounds[0] + rounds[1]):
        if abs(total + a) >= limit:
            refused.append(a)
        else:
            total += a
    assert refused == [decimal.Decimal("60000000000000.00"), decimal.Decimal("20000000000000.00")]
    expected = {}

    def send(extra, seed):
        sent = json.loads(client("transactions_producer.py", brokers, registry, topic, count,
                                 20, seed, ",".join(extra)))
        for account, text in sent.items():
            expected[account] = expected.get(account, decimal.Decimal(0)) + decimal.Decimal(text)

    with RedisServer() as redis:
        args = topic_args(topic) + [
            "--set", f"kafka.topics={{\"{topic}\"={{partitions=3}},\"{dlq}\"={{partitions=1}}}}",
            "--set", f"pipeline.consumer.dead_letter_topic=\"{dlq}\""]
        admin = AdminClient({"bootstrap.servers": brokers})
        for future in admin.create_topics([NewTopic(topic, 3, 1)]).values():
            future.result(30)
        send(rounds[0], 9)
        consumer = start_pipehost("run", JAGO, "--pipeline", "consumer", *args,
                                  env={"REDIS_URL": redis.url})

        def applied():
            values = redis.cli("HVALS", "pipehost:positions:consumer").split()
            return sum(int(v) for v in values) if values else 0
        try:
            for n, extra in enumerate(rounds):
                if n == 1:
                    send(extra, 10)
                try:
                    wait_until(lambda: applied() == (n + 1) * count + sum(map(len, rounds[:n + 1])),
                               120, f"pipehost to read every record of round {n + 1}")
                except AssertionError:
                    consumer.kill()
                    raise AssertionError(f"round {n + 1}: applied {applied()}:\n"
                                         f"{consumer.communicate()[1][-3000:]}") from None
            expected[EXTRA_ACCOUNT] = total
            assert {a: redis.cli("GET", a) for a in expected} == \
                {a: f"{t:.2f}" for a, t in expected.items()}
            consumer.send_signal(signal.SIGTERM)
            _, err = consumer.communicate(timeout=60)
            assert consumer.returncode == 0, err[-3000:]
            assert err.count("reading again from") == 2, err[-3000:]
        finally:
            if consumer.poll() is None:
                consumer.kill()
    letters = read_topic(brokers, dlq, len(refused))
    assert len(letters) == len(refused), letters
    deserializer = ProtobufDeserializer(transaction_class(), {"use.deprecated.format": False})
    context = SerializationContext(topic, MessageField.VALUE)
    amounts = [decimal.Decimal(repr(deserializer(value, context).amount)) for value, _ in letters]
    assert amounts == refused
    for _, headers in letters:
        assert headers["pipehost.stage"] == "sink"
        assert "would leave the exact range" in headers["pipehost.error"], headers


def read_topic(brokers, topic, count, idle_s=20):
    """(value, headers) of the first `count` records of a topic, read with confluent-kafka."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": unique("reader"),
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    out, last = [], time.monotonic()
    try:
        while len(out) < count and time.monotonic() - last < idle_s:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            last = time.monotonic()
            out.append((msg.value(), {k: (v or b"").decode() for k, v in (msg.headers() or [])}))
    finally:
        consumer.close()
    return out


def test_headers_and_keys_pass_through_exactly_a_null_stays_null_and_an_empty_one_empty():
    """A Kafka header may have no value (null), which is not an empty value, and a key may
    be null or empty. pipehost copies records topic to topic with their keys and headers as
    confluent-kafka wrote them; the file sink writes a null header value as JSON null.
    (Null header values became empty ones, and empty keys null ones.)"""
    from confluent_kafka import Producer
    brokers = require_env("KAFKA_BROKERS")
    source, copy = unique("headers-in"), unique("headers-out")
    admin = AdminClient({"bootstrap.servers": brokers})
    for t in (source, copy):
        admin.create_topics([NewTopic(t, 1, 1)])[t].result(30)
    sent = [[("trace", b"t1"), ("none", None), ("empty", b""), ("raw", b"\xff\x00")],
            [("none", None), ("none", b"again")],
            [], [], []]
    keys = [b"k0", b"k1", b"k2", b"", None]
    producer = Producer({"bootstrap.servers": brokers})
    for i, headers in enumerate(sent):
        producer.produce(source, key=keys[i], value=json.dumps({"i": i}).encode(), headers=headers)
    producer.flush(30)
    out = os.path.join(tempfile.mkdtemp(), "out.jsonl")
    path = real_services_config(f"""
[pipelines.copy]
source = {{ plugin = "kafka", topics = ["{source}"], group = "{source}-copy", stop_at_end = true }}
sink = {{ plugin = "kafka", topic = "{copy}" }}
[pipelines.show]
source = {{ plugin = "kafka", topics = ["{source}"], group = "{source}-show", stop_at_end = true }}
transforms = [ {{ plugin = "json_decode" }} ]
sink = {{ plugin = "file", path = "{out}", with_headers = true }}
""", "headers.toml")
    pipehost("run", path, "--no-progress", check=0, timeout=120)
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": unique("reader"),
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([copy])
    got, last = [], time.monotonic()
    while len(got) < len(sent) and time.monotonic() - last < 20:
        msg = consumer.poll(1.0)
        if msg is not None and not msg.error():
            got.append((msg.key(), msg.headers() or []))
            last = time.monotonic()
    consumer.close()
    assert got == [(keys[i], h) for i, h in enumerate(sent)], got
    lines = [json.loads(line) for line in open(out)]
    assert lines[0]["headers"] == {"trace": "t1", "none": None, "empty": "", "raw": "/wA="}, lines[0]


def test_a_proto_importing_a_file_of_its_own_decodes_through_its_registered_references():
    """confluent-kafka's ProtobufSerializer registers a user import (acme/money.proto)
    under a subject of its own and the schema with references to it: protobuf_decode
    fetches them and decodes the imported message's fields."""
    brokers, registry = require_env("KAFKA_BROKERS"), require_env("SCHEMA_REGISTRY_URL")
    topic, count = unique("payments"), 300
    admin = AdminClient({"bootstrap.servers": brokers})  # alive until the answer
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result()
    sent = json.loads(client("payments_producer.py", brokers, registry, topic, count))
    out = os.path.join(tempfile.mkdtemp(prefix="pipehost-e2e-"), "payments.jsonl")
    config = real_services_config(f"""
[pipelines.payments]
source = {{ plugin = "kafka", topics = ["{topic}"], group = "{topic}-readers", stop_at_end = true }}
transforms = [ {{ plugin = "protobuf_decode" }} ]
sink = {{ plugin = "file", path = "{out}" }}
""", "payments.toml")
    pipehost("run", config, "--no-progress", check=0, timeout=120)
    got = [json.loads(line) for line in open(out)]
    assert len(got) == count
    # the well-known import (a reference too) is the compiled-in Timestamp
    assert {v["id"]: v["at"] for v in got}["pay-5"].startswith("2024-12-01T00:00:05")
    assert sorted((v["id"], v["amount"]["currency"], v["amount"]["units"]) for v in got) == \
        sorted((p["id"], p["currency"], p["units"]) for p in sent)


def test_pipehost_registers_a_files_import_as_a_reference_and_python_decodes_it():
    """protobuf_encode of a message whose file imports another of ours (the protobuf
    plugin's test schemas: acme/payment.proto imports acme/money.proto): the import is
    registered under its own name and the schema with a reference to it, which a real
    registry resolves; confluent-kafka's ProtobufDeserializer reads what pipehost wrote."""
    from payments_producer import payment_class
    import urllib.parse
    import urllib.request
    brokers, registry = require_env("KAFKA_BROKERS"), require_env("SCHEMA_REGISTRY_URL")
    descriptors = os.path.join(os.environ.get("PIPEHOST_BUILD_DIR", "build"), "plugins", "protobuf",
                               "protobuf_test.desc")
    source, out, count = unique("payments-json"), unique("payments-pb"), 200
    admin = AdminClient({"bootstrap.servers": brokers})
    for f in admin.create_topics([NewTopic(source, 1, 1), NewTopic(out, 1, 1)]).values():
        f.result()
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": brokers})
    sent = [{"id": f"p{i}", "amount": {"currency": ("EUR", "USD")[i % 2], "units": i * 3}} for i in range(count)]
    for p in sent:
        producer.produce(source, json.dumps(p).encode())
    assert producer.flush(30) == 0
    config = real_services_config(f"""
[pipelines.encode]
source = {{ plugin = "kafka", topics = ["{source}"], group = "{source}-g", stop_at_end = true }}
transforms = [ {{ plugin = "json_decode" }},
               {{ plugin = "protobuf_encode", message = "acme.Payment", descriptor_set = "{descriptors}", topic = "{out}" }} ]
sink = {{ plugin = "kafka", topic = "{out}" }}
""", "encode.toml")
    pipehost("run", config, "--no-progress", check=0, timeout=120)
    latest = json.loads(urllib.request.urlopen(
        f"{registry}/subjects/{urllib.parse.quote(out + '-value', safe='')}/versions/latest").read())
    assert [r["name"] for r in latest.get("references", [])] == ["acme/money.proto"], latest
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": unique("py"), "auto.offset.reset": "earliest"})
    consumer.subscribe([out])
    deserializer = ProtobufDeserializer(payment_class(), {"use.deprecated.format": False})
    got = []
    deadline = time.monotonic() + 60
    while len(got) < count and time.monotonic() < deadline:
        m = consumer.poll(1)
        if m is None or m.error():
            continue
        p = deserializer(m.value(), SerializationContext(out, MessageField.VALUE))
        got.append({"id": p.id, "amount": {"currency": p.amount.currency, "units": p.amount.units}})
    consumer.close()
    assert sorted(got, key=lambda p: p["id"]) == sorted(sent, key=lambda p: p["id"])


run_tests(globals())
