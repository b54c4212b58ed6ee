"""Seed 004 on real Kafka and the real Schema Registry: configs/tenants.toml, with Python
confluent-kafka's AvroSerializer / AvroDeserializer on the other side. Events are routed
by destination to processor.to.<destination>, re-encoded with the output schema; unknown
destinations are dead-lettered with the reason; kill -9 mid-stream loses nothing
(at least once) and duplicates nothing with exactly_once = true (read_committed)."""
import collections
import json
import os
import signal
import threading
import time
import uuid

from support import (CONFIGS, pipehost, require_env, run_tests, start_pipehost, unique,
                     wait_until, write_config)

TENANTS = os.path.join(CONFIGS, "tenants.toml")
REAL = os.path.join(CONFIGS, "env", "real.toml")
DESTINATIONS = ("finance", "marketing", "logistics")


def schema_text(name):
    return open(os.path.join(CONFIGS, "schemas", name)).read()


def tenant_config(prefix, exactly_once=False):
    """configs/tenants.toml on topics, group and subjects of the test's own."""
    text = open(TENANTS).read()
    text = text.replace("${PIPEHOST_CONFIG_DIR}", CONFIGS)
    text = text.replace('"producer.to.processor', f'"{prefix}.producer.to.processor')
    text = text.replace('"processor.', f'"{prefix}.processor.')
    text = text.replace('group = "event_processor"', f'group = "{prefix}-event_processor"')
    if exactly_once:
        text = text.replace('[pipelines.processor.sink]\nplugin = "kafka"',
                            f'[pipelines.processor.sink]\nplugin = "kafka"\nexactly_once = true\n'
                            f'transactional_id = "{prefix}"')
        assert "exactly_once = true" in text
    return write_config(text, "tenants.toml")


def processor_args(config, *extra):
    return ["run", config, REAL, "--pipeline", "processor", "--no-progress", *extra]


def registry():
    from confluent_kafka.schema_registry import SchemaRegistryClient
    return SchemaRegistryClient({"url": require_env("SCHEMA_REGISTRY_URL")})


def create_topic(topic, partitions=3):
    import confluent_kafka.admin
    admin = confluent_kafka.admin.AdminClient({"bootstrap.servers": require_env("KAFKA_BROKERS")})
    admin.create_topics([confluent_kafka.admin.NewTopic(topic, partitions, 1)])[topic].result(30)


def produce_events(topic, events, per_second=None):
    """Events as the seed's Python producer sent them: AvroSerializer (subject
    <topic>-value, registered automatically), key "<id>:<DESTINATION>"; at most
    per_second of them a second when given."""
    import confluent_kafka
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    serialize = AvroSerializer(registry(), schema_text("producer-to-processor.avsc"))
    producer = confluent_kafka.Producer({"bootstrap.servers": require_env("KAFKA_BROKERS"),
                                         "enable.idempotence": True})
    context = SerializationContext(topic, MessageField.VALUE)
    started = time.monotonic()
    for i, e in enumerate(events):
        key = f"{e['origin_service_id']}:{e['destination_service_type']}"
        producer.produce(topic, key=key.encode(), value=serialize(e, context))
        producer.poll(0)
        if per_second and i % 100 == 99:
            ahead = (i + 1) / per_second - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    assert producer.flush(60) == 0


def event(service_id, destination, n, ts=None):
    return {"origin_service_id": service_id, "origin_service_type": "financial",
            "destination_service_type": destination,
            "event_timestamp": ts if ts is not None else int(time.time() * 1000),
            "payload": f"dummy-payload {n} {uuid.uuid4()}"}


def read_topic(topic, committed_only=True, raw=False):
    """Every record of a topic, read with AvroDeserializer: (partition, key, value dict)."""
    import confluent_kafka
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    deserialize = AvroDeserializer(registry())
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": require_env("KAFKA_BROKERS"), "group.id": unique("reader"),
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed" if committed_only else "read_uncommitted"})
    metadata = consumer.list_topics(topic, timeout=30).topics[topic]
    partitions = len(metadata.partitions)
    consumer.subscribe([topic])
    out, ended, deadline = [], set(), time.monotonic() + 120
    while len(ended) < partitions and time.monotonic() < deadline:
        m = consumer.poll(1.0)
        if m is None:
            continue
        if m.error():
            if m.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                ended.add(m.partition())
                continue
            raise AssertionError(m.error())
        ended.discard(m.partition())
        value = m.value() if raw else deserialize(m.value(), SerializationContext(topic, MessageField.VALUE))
        out.append((m.partition(), m.key().decode() if m.key() else None, value, m.headers() or []))
    consumer.close()
    assert len(ended) == partitions, f"{topic}: not read to the end"
    return out


def test_python_producer_events_routed_and_read_back_with_python_deserializer():
    prefix = unique("tenants")
    topic = f"{prefix}.producer.to.processor"
    create_topic(topic)
    # The seed's run: -origin_service_id 123456 -list_of_destinations FINANCE marketing
    # -amount_of_messages 8; the producer upper-cases the destinations.
    events = [event("123456", ("FINANCE", "MARKETING")[i % 2], i) for i in range(8)]
    unknown = event("123456", "HR", 99)
    produce_events(topic, events + [unknown])
    import confluent_kafka
    p = confluent_kafka.Producer({"bootstrap.servers": require_env("KAFKA_BROKERS")})
    p.produce(topic, key=b"garbage", value=b"\x00\x7f\xff\xff\xf0not avro at all")
    p.produce(topic, key=b"plain", value=b"plain text")
    assert p.flush(30) == 0

    config = tenant_config(prefix)
    started = int(time.time() * 1000)
    pipehost(*processor_args(config, "--set", "pipeline.processor.source.stop_at_end=true"),
             check=0, timeout=180)

    finance = read_topic(f"{prefix}.processor.to.finance")
    marketing = read_topic(f"{prefix}.processor.to.marketing")
    assert read_topic(f"{prefix}.processor.to.logistics") == []
    assert len(finance) == 4 and len(marketing) == 4, (finance, marketing)
    by_payload = {e["payload"]: e for e in events}
    for records, destination in ((finance, "FINANCE"), (marketing, "MARKETING")):
        for _, key, value, headers in records:
            assert key == f"123456:{destination}"
            source = by_payload[value["payload"]]
            assert value == {
                "producer_service_id": "123456", "processor_service_id": "event-processor-1",
                "destination_type": destination,
                "producer_event_timestamp": source["event_timestamp"],
                "processor_event_timestamp": value["processor_event_timestamp"],
                "payload": source["payload"]}, value
            assert value["processor_event_timestamp"] >= value["producer_event_timestamp"]
            assert value["processor_event_timestamp"] >= started - 1000
            assert all(k != "pipehost.subject" for k, _ in headers)
        # one key per destination: one partition, in the order produced
        assert [v["payload"] for _, _, v, _ in records] == \
            [e["payload"] for e in events if e["destination_service_type"] == destination]

    latest = registry().get_latest_version(f"{prefix}.processor.to.consumer-value")
    assert json.loads(latest.schema.schema_str)["name"] == "ProcessorToConsumer"

    dead = read_topic(f"{prefix}.processor.dead-letters", raw=True)
    assert len(dead) == 3, dead
    reasons = "\n".join(v.decode(errors="replace") for _, _, _, headers in dead
                        for k, v in headers if k == "pipehost.error")
    assert "destination_service_type 'HR' is not a routed destination" in reasons, reasons
    assert "does not start with the Schema Registry magic byte" in reasons, reasons
    assert "unknown schema id 2147483632" in reasons, reasons


def test_both_producers_and_the_processor_of_tenants_toml():
    prefix = unique("tenants")
    config = tenant_config(prefix)
    r = pipehost("run", config, REAL, "--no-progress", check=0, timeout=180)
    outputs = {d: read_topic(f"{prefix}.processor.to.{d}") for d in DESTINATIONS}
    # 123456 sends FINANCE, MARKETING in turn; 654321 sends LOGISTICS, FINANCE (upper-cased)
    assert {d: len(v) for d, v in outputs.items()} == {"finance": 8, "marketing": 4, "logistics": 4}, r.stderr
    keys = collections.Counter(key for d in DESTINATIONS for _, key, _, _ in outputs[d])
    assert keys == {"123456:FINANCE": 4, "123456:MARKETING": 4, "654321:LOGISTICS": 4,
                    "654321:FINANCE": 4}
    for d in DESTINATIONS:
        for _, _, v, _ in outputs[d]:
            assert v["destination_type"] == d.upper() and v["payload"].startswith("dummy-payload ")


def kill_and_restart(exactly_once):
    prefix = unique("tenants-kill")
    topic = f"{prefix}.producer.to.processor"
    create_topic(topic)
    ids = [str(100000 + i) for i in range(4)]
    events = [event(ids[i % 4], ("FINANCE", "MARKETING", "LOGISTICS")[(i // 4) % 3], i, ts=1700000000000 + i)
              for i in range(30000)]
    config = tenant_config(prefix, exactly_once)
    processor = start_pipehost(*processor_args(config))
    # The events arrive while the processor runs (6 s), so the kills land mid-stream.
    producing = threading.Thread(target=produce_events, args=(topic, events, 5000))
    producing.start()
    try:
        def routed():
            import confluent_kafka
            c = confluent_kafka.Consumer({"bootstrap.servers": require_env("KAFKA_BROKERS"),
                                          "group.id": unique("probe")})
            total = 0
            for d in DESTINATIONS:
                for p in range(3):
                    try:
                        lo, hi = c.get_watermark_offsets(
                            confluent_kafka.TopicPartition(f"{prefix}.processor.to.{d}", p), timeout=10)
                    except confluent_kafka.KafkaException:  # not created yet
                        lo = hi = 0
                    total += hi - lo
            c.close()
            return total
        for kill in range(2):
            wait_until(lambda: routed() > 8000 * (kill + 1), 120, "events routed", interval=0.2)
            processor.send_signal(signal.SIGKILL)
            processor.wait()
            if kill == 0:
                processor = start_pipehost(*processor_args(config))
        producing.join()
        pipehost(*processor_args(config, "--set", "pipeline.processor.source.stop_at_end=true"),
                 check=0, timeout=300)
    finally:
        producing.join()
        if processor.poll() is None:
            processor.kill()

    read = {d: read_topic(f"{prefix}.processor.to.{d}", committed_only=exactly_once)
            for d in DESTINATIONS}
    expected = {e["payload"]: e for e in events}
    counts = collections.Counter(v["payload"] for d in DESTINATIONS for _, _, v, _ in read[d])
    assert set(counts) == set(expected), f"{len(set(expected) - set(counts))} events never routed"
    for d in DESTINATIONS:
        for _, key, v, _ in read[d]:
            e = expected[v["payload"]]
            assert v["destination_type"] == e["destination_service_type"] == d.upper()
            assert key == f"{e['origin_service_id']}:{d.upper()}"
    duplicates = sum(n - 1 for n in counts.values())
    if exactly_once:
        assert duplicates == 0, f"{duplicates} duplicates under exactly_once"
    # Per key, each output partition holds the events in the order they were produced
    # (after a replay, the first copies are in order).
    for d in DESTINATIONS:
        seen, order = set(), collections.defaultdict(list)
        for partition, key, v, _ in read[d]:
            if v["payload"] in seen:
                continue
            seen.add(v["payload"])
            order[(partition, key)].append(v["producer_event_timestamp"])
        for k, stamps in order.items():
            assert stamps == sorted(stamps), f"{d} {k}: out of order"
    return duplicates


def with_refusing_finance_topic(name):
    """An input topic of one partition and a finance topic taking at most 2000 bytes a
    batch, with an event far larger for it: (prefix, input topic, finance topic, event)."""
    import confluent_kafka.admin
    admin = confluent_kafka.admin.AdminClient({"bootstrap.servers": require_env("KAFKA_BROKERS")})
    prefix = unique(name)
    topic = f"{prefix}.producer.to.processor"
    create_topic(topic, partitions=1)
    finance = f"{prefix}.processor.to.finance"
    admin.create_topics([confluent_kafka.admin.NewTopic(finance, 3, 1, config={"max.message.bytes": "2000"})]
                        )[finance].result(30)
    big = event("100001", "FINANCE", 1)
    big["payload"] = "x" * 20000
    return prefix, topic, finance, big


def test_a_record_the_broker_or_the_producer_refuses_for_good_is_dead_lettered_and_the_rest_goes_on():
    # The finance topic takes at most 2000 bytes a batch; one event is far larger. Under
    # exactly_once each transaction holding it aborted: the pipeline stopped, and every
    # restart stopped again. At least once, a record past the producer's own
    # message.max.bytes stopped it the same way, naming no record. Now the record is
    # dead-lettered with the reason and the others are routed. At least once, the broker's
    # refusal (a delivery report, after the batch was handed over) stopped it too.
    for exactly_once, producer_refuses in ((True, False), (False, True), (False, False)):
        prefix, topic, finance, big = with_refusing_finance_topic("tenants-refused")
        produce_events(topic, [event("100000", "MARKETING", 0), big, event("100002", "MARKETING", 2)])
        extra = ["--set", "pipeline.processor.source.stop_at_end=true"]
        if producer_refuses:
            extra += ["--set", 'pipeline.processor.sink.properties={"message.max.bytes" = "10000"}']
        r = pipehost(*processor_args(tenant_config(prefix, exactly_once=exactly_once), *extra),
                     check=0, timeout=120)
        assert r.returncode == 0, r.stderr[-3000:]
        marketing = read_topic(f"{prefix}.processor.to.marketing", committed_only=True)
        ids = [v["producer_service_id"] for _, _, v, _ in marketing]
        if exactly_once:
            assert sorted(ids) == ["100000", "100002"]
        else:  # at least once: the batch read again may write a record twice
            assert set(ids) == {"100000", "100002"}, ids
        assert read_topic(finance, committed_only=True) == []
        letters = read_topic(f"{prefix}.processor.dead-letters", raw=True)
        assert len(letters) == 1, letters
        headers = dict(letters[0][3])
        assert headers["pipehost.origin.offset"] == b"1"
        reason = headers["pipehost.error"].decode()
        if not producer_refuses:
            assert f"delivery of the record from {topic}/0@1 to {finance} failed" in reason, reason
            assert "refuses it whatever the attempt" in reason
        else:
            assert f"the record from {topic}/0@1 to {finance} is larger than message.max.bytes" in reason, reason


def test_at_least_once_finds_the_refused_record_among_records_refused_together():
    # As under exactly_once, but the broker's refusal comes in delivery reports after the
    # batch was handed over (and later batches with it): the batch is read again, the
    # records refused together are produced one at a time, the big one is dead-lettered.
    prefix, topic, finance, big = with_refusing_finance_topic("tenants-alo-refused-together")
    same_partition = [event("100001", "FINANCE", i) for i in range(6)]  # big's key: its partition
    others = [event(str(300000 + i), "MARKETING", i) for i in range(200)]
    produce_events(topic, others[:100] + same_partition[:3] + [big] + same_partition[3:] + others[100:])
    r = pipehost(*processor_args(tenant_config(prefix),
                                 "--set", "pipeline.processor.source.stop_at_end=true",
                                 "--set", "pipeline.processor.batch_size=16",
                                 "--set", 'pipeline.processor.sink.properties={"linger.ms" = "200"}'),
                 timeout=120)
    routed = read_topic(finance)
    assert sorted(set(v["payload"] for _, _, v, _ in routed)) == sorted(set(e["payload"] for e in same_partition))
    assert len(routed) >= len(same_partition)
    marketing = read_topic(f"{prefix}.processor.to.marketing")
    assert set(v["producer_service_id"] for _, _, v, _ in marketing) == set(e["origin_service_id"] for e in others)
    letters = read_topic(f"{prefix}.processor.dead-letters", raw=True)
    assert len(letters) == 1, letters
    headers = dict(letters[0][3])
    assert headers["pipehost.origin.offset"] == b"103"
    assert b"Message size too large (the broker refuses it whatever the attempt)" in headers["pipehost.error"]
    assert "refused in produce requests of several records" in r.stderr and "produced one at a time" in r.stderr, r.stderr[-3000:]


def test_exactly_once_names_the_refused_record_while_the_rest_of_a_big_transaction_is_queued():
    # The broker refuses the first record of a transaction while thousands more are still
    # queued: librdkafka then refuses every later produce and purges the queued records
    # (their reports come first, innocent). The pipeline stopped naming an innocent record,
    # or rewound for ever; the refused record must be dead-lettered and the rest routed.
    prefix, topic, finance, big = with_refusing_finance_topic("tenants-refused-big")
    others = [event(str(200000 + i), "MARKETING", i) for i in range(3000)]
    produce_events(topic, [big] + others)
    r = pipehost(*processor_args(tenant_config(prefix, exactly_once=True),
                                 "--set", "pipeline.processor.source.stop_at_end=true",
                                 "--set", "pipeline.processor.batch_size=4096",
                                 # a short queue: producing waits for deliveries, so the refusal
                                 # comes back while the transaction's records are still produced
                                 "--set", 'pipeline.processor.sink.properties={"queue.buffering.max.messages" = "100"}'),
                 check=0, timeout=180)
    marketing = read_topic(f"{prefix}.processor.to.marketing", committed_only=True)
    assert sorted(v["producer_service_id"] for _, _, v, _ in marketing) == sorted(e["origin_service_id"] for e in others)
    letters = read_topic(f"{prefix}.processor.dead-letters", raw=True)
    assert len(letters) == 1, letters
    headers = dict(letters[0][3])
    assert headers["pipehost.origin.offset"] == b"0"
    assert f"delivery of the record from {topic}/0@0 to {finance} failed" in headers["pipehost.error"].decode()


def test_exactly_once_finds_the_refused_record_among_records_refused_together():
    # Events for one finance partition travel in one produce request, which the broker
    # refuses whole for the big one: every record of it failed, and the pipeline stopped
    # ("which of them is at fault is unknown"). The batch is now read again a record at a
    # time: the big event is dead-lettered, the others of its partition are routed.
    prefix, topic, finance, big = with_refusing_finance_topic("tenants-refused-together")
    same_partition = [event("100001", "FINANCE", i) for i in range(6)]  # big's key: its partition
    produce_events(topic, same_partition[:3] + [big] + same_partition[3:])
    pipehost(*processor_args(tenant_config(prefix, exactly_once=True),
                             "--set", "pipeline.processor.source.stop_at_end=true",
                             "--set", 'pipeline.processor.sink.properties={"linger.ms" = "200"}'),
             timeout=120)
    routed = read_topic(finance, committed_only=True)
    assert sorted(v["payload"] for _, _, v, _ in routed) == sorted(e["payload"] for e in same_partition)
    letters = read_topic(f"{prefix}.processor.dead-letters", raw=True)
    assert len(letters) == 1, letters
    assert dict(letters[0][3])["pipehost.origin.offset"] == b"3"


def test_a_destination_whose_topic_does_not_exist_is_dead_lettered_the_others_routed():
    # One tenant's topic missing (the broker creates none) stopped the whole router after
    # 30 s, every tenant with it, and again at every restart.
    for exactly_once in (False, True):
        prefix = unique("tenants-missing")
        topic = f"{prefix}.producer.to.processor"
        create_topic(topic, partitions=1)
        text = open(tenant_config(prefix, exactly_once=exactly_once)).read()
        text = text.replace('LOGISTICS = "' + prefix + '.processor.to.logistics" }',
                            'LOGISTICS = "' + prefix + '.processor.to.logistics", HR = "' + prefix + '.processor.to.hr" }')
        text = text.replace('LOGISTICS = "' + prefix + '.processor.to.consumer-value" }',
                            'LOGISTICS = "' + prefix + '.processor.to.consumer-value", HR = "' + prefix + '.processor.to.consumer-value" }')
        assert "processor.to.hr" in text
        config = write_config(text, "tenants.toml")
        produce_events(topic, [event("1", "MARKETING", 0), event("2", "HR", 1), event("3", "MARKETING", 2),
                               event("4", "HR", 3), event("5", "MARKETING", 4)])
        r = pipehost(*processor_args(config, "--set", "pipeline.processor.source.stop_at_end=true"), check=0, timeout=120)
        assert f"topic {prefix}.processor.to.hr does not exist" in r.stderr
        marketing = read_topic(f"{prefix}.processor.to.marketing", committed_only=True)
        assert sorted(v["producer_service_id"] for _, _, v, _ in marketing) == ["1", "3", "5"]
        letters = read_topic(f"{prefix}.processor.dead-letters", raw=True)
        assert sorted(dict(h)["pipehost.origin.offset"] for _, _, _, h in letters) == [b"1", b"3"], letters
        assert all(b"does not exist" in dict(h)["pipehost.error"] for _, _, _, h in letters)


def test_a_registry_url_that_is_not_the_api_root_is_named_not_taken_for_unknown_schemas():
    # Every path under a wrong root answers 404: taken for "schema id N is not in the
    # registry", every record would have been dead-lettered and committed past.
    prefix = unique("tenants-badurl")
    create_topic(f"{prefix}.producer.to.processor", partitions=1)
    produce_events(f"{prefix}.producer.to.processor", [event("100000", "FINANCE", 0)])
    wrong = require_env("SCHEMA_REGISTRY_URL").split("/apis/")[0] + "/not-the-api"
    r = pipehost(*processor_args(tenant_config(prefix), "--set", "pipeline.processor.source.stop_at_end=true"),
                 env={"SCHEMA_REGISTRY_URL": wrong}, timeout=120)
    assert r.returncode != 0
    assert "without a Confluent error code" in r.stderr and "API root" in r.stderr, r.stderr[-3000:]


def test_a_registry_that_wants_credentials_stops_the_pipeline_saying_so():
    # 401 used to be retried for ever as if the registry were down for a while.
    import http.server
    import threading

    class Refuse(http.server.BaseHTTPRequestHandler):
        def answer(self):
            body = b'{"error_code": 401, "message": "Unauthorized"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        do_GET = do_POST = answer

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        prefix = unique("tenants-401")
        create_topic(f"{prefix}.producer.to.processor", partitions=1)
        produce_events(f"{prefix}.producer.to.processor", [event("100000", "FINANCE", 0)])
        url = f"http://127.0.0.1:{server.server_port}"
        r = pipehost(*processor_args(tenant_config(prefix), "--set", "pipeline.processor.source.stop_at_end=true"),
                     env={"SCHEMA_REGISTRY_URL": url}, timeout=120)
    finally:
        server.shutdown()
    assert r.returncode != 0
    assert f"schema registry {url}/" in r.stderr and "wants credentials" in r.stderr, r.stderr[-3000:]


def test_kill_9_twice_every_event_routed_at_least_once():
    duplicates = kill_and_restart(exactly_once=False)
    print(f"  at least once: {duplicates} duplicates after two kill -9")


def test_kill_9_twice_with_exactly_once_every_event_routed_once():
    kill_and_restart(exactly_once=True)


run_tests(globals())
