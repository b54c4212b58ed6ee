"""A third-party consumer: reads a topic of pipehost-produced transactions with
confluent-kafka's ProtobufDeserializer and prints every decoded transaction as a JSON
line. Stops once it has read COUNT messages (or after IDLE_S seconds without any).

usage: transactions_consumer.py BROKERS TOPIC GROUP COUNT [IDLE_S]"""
import json
import sys
import time

from confluent_kafka import Consumer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from transactions_pb import transaction_class


def main(brokers, topic, group, count, idle_s=30):
    deserializer = ProtobufDeserializer(transaction_class(), {"use.deprecated.format": False})
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": group,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen, last = 0, time.monotonic()
    while seen < count and time.monotonic() - last < idle_s:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        t = deserializer(msg.value(), SerializationContext(topic, MessageField.VALUE))
        print(json.dumps({"key": msg.key().decode(), "transaction_id": t.transaction_id,
                          "account_number": t.account_number,
                          "transaction_reference": t.transaction_reference,
                          "seconds": t.transaction_datetime.seconds, "amount": t.amount}))
        seen += 1
        last = time.monotonic()
    consumer.close()


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], a[2], int(a[3]), float(a[4]) if len(a) > 4 else 30)
