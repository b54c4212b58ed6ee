"""A third-party producer, written the way seed 001's Python producer is: fake
transactions as protobuf (confluent-kafka's ProtobufSerializer, Schema Registry
framing), keyed by account number, one produce call per message. Prints the sum it sent
per account as JSON on stdout.

usage: transactions_producer.py BROKERS REGISTRY_URL TOPIC COUNT [ACCOUNTS] [SEED] [EXTRA]

EXTRA: comma-separated amounts sent, in order and spread among the others, to one more
account, ID999999999999999999 (its sum is printed as plain addition)."""
import decimal
import json
import random
import sys
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer

from transactions_pb import transaction_class

EXTRA_ACCOUNT = "ID999999999999999999"


def main(brokers, registry_url, topic, count, accounts=20, seed=1, extra=()):
    rng = random.Random(seed)
    Transaction = transaction_class()
    serializer = ProtobufSerializer(Transaction, SchemaRegistryClient({"url": registry_url}),
                                    {"use.deprecated.format": False})
    keys = StringSerializer("utf_8")
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
    account_numbers = [f"ID{rng.randrange(10**18):018d}" for _ in range(accounts)]
    sums = {}
    failures = []

    def delivered(err, msg):
        if err is not None:
            failures.append(str(err))

    order = [None] * count  # None: a random account; else an extra amount
    for i, amount in enumerate(extra):
        order.insert(i * (count + i) // len(extra), amount)
    for amount in order:
        t = Transaction()
        t.transaction_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        t.account_number = rng.choice(account_numbers) if amount is None else EXTRA_ACCOUNT
        t.transaction_reference = f"REF{rng.randrange(10**9)}"
        now = time.time_ns()
        t.transaction_datetime.seconds = now // 1_000_000_000
        t.transaction_datetime.nanos = now % 1_000_000_000
        t.amount = round(rng.uniform(1, 1000), 2) if amount is None else float(amount)
        producer.produce(topic, key=keys(t.account_number),
                         value=serializer(t, SerializationContext(topic, MessageField.VALUE)),
                         on_delivery=delivered)
        producer.poll(0)
        sums[t.account_number] = sums.get(t.account_number, decimal.Decimal(0)) + \
            decimal.Decimal(repr(t.amount)).quantize(decimal.Decimal("0.01"))
    producer.flush(60)
    if failures:
        raise SystemExit(f"{len(failures)} deliveries failed: {failures[:3]}")
    print(json.dumps({k: f"{v:.2f}" for k, v in sums.items()}))


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], a[2], int(a[3]), int(a[4]) if len(a) > 4 else 20, int(a[5]) if len(a) > 5 else 1,
         a[6].split(",") if len(a) > 6 and a[6] else ())
