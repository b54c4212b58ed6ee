"""Contender (b), produce, written the way seed 001's Python producer is (see
tests/e2e/clients/transactions_producer.py): fake transactions built one at a time,
confluent-kafka's ProtobufSerializer (registers its schema, Confluent framing), one
produce() + poll(0) per message, per-message delivery callback, flush at the end.
Unlike the seed, it waits for room when librdkafka's queue is full (BufferError: poll and
produce again, confluent-kafka's documented idiom): the seed's code crashes there whenever
the broker falls behind, which on this machine was every run of 200,000 records.

usage: produce_per_message.py --brokers B --registry URL --topic T --count N [--seed 42]
         [--accounts 20] [--rate 0]
Prints a JSON line: records, seconds, latency (produce call to delivery report)."""
import random
import sys
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer

import bench_common as bc


def main(a):
    rng = random.Random(a["seed"])
    Transaction = bc.transaction_class()
    serializer = ProtobufSerializer(Transaction, SchemaRegistryClient({"url": a["registry"]}),
                                    {"use.deprecated.format": False})
    keys = StringSerializer("utf_8")
    producer = Producer({"bootstrap.servers": a["brokers"], "enable.idempotence": True})
    account_numbers = [f"GB{rng.randrange(100):02d}JAGO{rng.randrange(10**14):014d}"
                       for _ in range(a["accounts"])]
    latency = bc.Histogram()
    failures = []
    delivered = [0]

    def on_delivery(err, msg):
        if err is not None:
            failures.append(str(err))
            return
        delivered[0] += 1
        latency.add(bc.now_ms() - msg.timestamp()[1])

    topic, rate = a["topic"], a["rate"]
    start = time.monotonic()
    for i in range(a["count"]):
        if rate > 0:
            ahead = start + i / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        t = Transaction()
        t.transaction_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        t.account_number = rng.choice(account_numbers)
        t.transaction_reference = f"TRX{rng.randrange(36**12):012d}"
        now = time.time_ns()
        t.transaction_datetime.seconds = now // 1_000_000_000
        t.transaction_datetime.nanos = now % 1_000_000_000
        t.amount = round(rng.uniform(1, 1000), 2)
        key = keys(t.account_number)
        value = serializer(t, SerializationContext(topic, MessageField.VALUE))
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:  # queue full: serve delivery reports until there is room
                producer.poll(0.1)
        producer.poll(0)
    producer.flush(120)
    if failures:
        raise SystemExit(f"{len(failures)} deliveries failed: {failures[:3]}")
    bc.report(delivered[0], time.monotonic() - start, latency)


if __name__ == "__main__":
    main(bc.args(sys.argv[1:], brokers="127.0.0.1:19092", registry="", topic="", count=200000,
                 seed=42, accounts=20, rate=0.0))
