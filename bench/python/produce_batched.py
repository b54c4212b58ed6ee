"""Contender (b), produce, written well: the schema id is registered once (by the
harness, the same text pipehost registers) and passed in; each transaction is built
with the generated-at-runtime class and serialized directly behind a prebuilt Confluent
header (no ProtobufSerializer per call), produced in a tight loop with a producer-level
delivery callback, poll(0) every 1000 messages and on BufferError, flush at the end.
librdkafka settings = pipehost's kafka sink defaults.

usage: produce_batched.py --brokers B --topic T --schema-id N --count N [--seed 42]
         [--accounts 20] [--rate 0]"""
import random
import struct
import sys
import time
import uuid

from confluent_kafka import Producer

import bench_common as bc

SETTINGS = {"enable.idempotence": True, "acks": "all", "linger.ms": 5,
            "batch.num.messages": 10000, "queue.buffering.max.kbytes": 16384,
            "queue.buffering.max.messages": 100000}


def main(a):
    rng = random.Random(a["seed"])
    Transaction = bc.transaction_class()
    header = b"\x00" + struct.pack(">I", a["schema_id"]) + b"\x00"
    latency = bc.Histogram()
    state = {"delivered": 0, "failed": 0}
    measure = a["rate"] > 0

    def on_delivery(err, msg):
        if err is not None:
            state["failed"] += 1
            return
        state["delivered"] += 1
        if measure:
            latency.add(bc.now_ms() - msg.timestamp()[1])

    producer = Producer({"bootstrap.servers": a["brokers"], "on_delivery": on_delivery, **SETTINGS})
    accounts = [f"GB{rng.randrange(100):02d}JAGO{rng.randrange(10**14):014d}".encode()
                for _ in range(a["accounts"])]
    names = [x.decode() for x in accounts]
    topic, rate, count = a["topic"], a["rate"], a["count"]
    produce, poll = producer.produce, producer.poll
    getrandbits, randrange = rng.getrandbits, rng.randrange
    t = Transaction()
    start = time.monotonic()
    i = 0
    while i < count:
        n = min(512, count - i)
        if rate > 0:
            due = int((time.monotonic() - start) * rate) + 1 - i
            if due <= 0:
                poll(0)
                time.sleep(max(0.0001, 1 / rate))
                continue
            n = min(n, due)
        now = time.time_ns()
        t.transaction_datetime.seconds = now // 1_000_000_000
        t.transaction_datetime.nanos = now % 1_000_000_000
        for _ in range(n):
            k = randrange(len(accounts))
            t.transaction_id = str(uuid.UUID(int=getrandbits(128), version=4))
            t.account_number = names[k]
            t.transaction_reference = f"TRX{getrandbits(60):012X}"
            t.amount = randrange(100, 100001) / 100
            value = header + t.SerializeToString()
            while True:
                try:
                    produce(topic, value, accounts[k])
                    break
                except BufferError:
                    poll(0.001)
        i += n
        poll(0)
    while producer.flush(1) > 0:
        pass
    if state["failed"]:
        raise SystemExit(f"{state['failed']} deliveries failed")
    bc.report(state["delivered"], time.monotonic() - start, latency, settings=SETTINGS)


if __name__ == "__main__":
    main(bc.args(sys.argv[1:], brokers="127.0.0.1:19092", topic="", schema_id=0, count=2000000,
                 seed=42, accounts=20, rate=0.0))
