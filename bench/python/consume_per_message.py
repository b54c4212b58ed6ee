"""Contender (b), consume, written the way seed 000's consumer is: poll() one message,
decode it with confluent-kafka's ProtobufDeserializer, one Redis INCRBYFLOAT per message
(key = account number), offsets committed asynchronously every 1000 messages. It has no
exactly-once: a crash or rebalance re-adds records, and totals are floats in Redis.
Ends when every assigned partition is read to its end (--live 1: on SIGTERM).

usage: consume_per_message.py --brokers B --topic T --group G --redis URL [--live 0]"""
import sys
import time

import redis
from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

import bench_common as bc


def main(a):
    bc.install_signals()
    r = redis.Redis.from_url(a["redis"])
    deserializer = ProtobufDeserializer(bc.transaction_class(), {"use.deprecated.format": False})
    consumer = Consumer({"bootstrap.servers": a["brokers"], "group.id": a["group"],
                         "auto.offset.reset": "earliest", "enable.partition.eof": True,
                         "enable.auto.commit": False})
    at_end = {}

    def on_assign(c, partitions):
        for p in partitions:
            at_end[p.partition] = False

    def on_revoke(c, partitions):
        for p in partitions:
            at_end.pop(p.partition, None)

    consumer.subscribe([a["topic"]], on_assign=on_assign, on_revoke=on_revoke)
    latency = bc.Histogram()
    ctx = SerializationContext(a["topic"], MessageField.VALUE)
    seen = 0
    start = time.monotonic()
    while not bc.stopping:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                at_end[msg.partition()] = True
                if not a["live"] and at_end and all(at_end.values()):
                    break
            continue
        at_end[msg.partition()] = False
        t = deserializer(msg.value(), ctx)
        r.incrbyfloat(t.account_number, t.amount)
        latency.add(bc.now_ms() - msg.timestamp()[1])
        seen += 1
        if seen % 1000 == 0:
            consumer.commit(asynchronous=True)
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as e:  # _NO_OFFSET: the last asynchronous commit had it all
        if e.args[0].code() != KafkaError._NO_OFFSET:
            raise
    consumer.close()
    bc.report(seen, time.monotonic() - start, latency)


if __name__ == "__main__":
    main(bc.args(sys.argv[1:], brokers="127.0.0.1:19092", topic="", group="", redis="", live=0))
