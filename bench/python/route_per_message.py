"""Contender (b), route, written the way seed 004's Python event processor is: poll() one
message, decode it with confluent-kafka's AvroDeserializer (writer schema by id from the
registry), route it by destination_service_type, build the ProcessorToConsumer dict
(processor_event_timestamp = now), encode it with AvroSerializer (subject
<prefix>.processor.to.consumer-value, registered on first use) and produce it
asynchronously with a delivery callback, the key kept; one producer per destination with
the seed's settings (bootstrap.servers only), poll(0) after each produce. The message
waits in an in-flight map until its delivery callback, which counts it; every
--commit-every (the seed's batch_size_to_commit_offsets = 5) delivered messages the
highest delivered offset + 1 of each partition is committed (asynchronously, as
confluent-kafka's commit() does by default). At least once. Ends when every assigned
partition is read to its end and nothing is in flight (--live 1: on SIGTERM).

usage: route_per_message.py --brokers B --registry URL --topic T --group G --prefix P
         [--processor-id event-processor-1] [--commit-every 5] [--live 0]
Prints a JSON line: records, seconds, latency (input CreateTime to delivery callback)."""
import os
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

import bench_common as bc

DESTINATIONS = {"FINANCE": "finance", "MARKETING": "marketing", "LOGISTICS": "logistics"}


def main(a):
    bc.install_signals()
    registry = SchemaRegistryClient({"url": a["registry"]})
    out_schema = open(os.path.join(bc.ROOT, "configs", "schemas", "processor-to-consumer.avsc")).read()
    subject = f"{a['prefix']}.processor.to.consumer-value"
    deserialize = AvroDeserializer(registry)
    serialize = AvroSerializer(registry, out_schema,
                               conf={"subject.name.strategy": lambda ctx, record_name: subject})
    consumer = Consumer({"bootstrap.servers": a["brokers"], "group.id": a["group"],
                         "auto.offset.reset": "earliest", "enable.partition.eof": True,
                         "enable.auto.commit": False})
    outputs = {d: (f"{a['prefix']}.processor.to.{suffix}", Producer({"bootstrap.servers": a["brokers"]}))
               for d, suffix in DESTINATIONS.items()}
    in_ctx = SerializationContext(a["topic"], MessageField.VALUE)
    out_ctx = {d: SerializationContext(t, MessageField.VALUE) for d, (t, _) in outputs.items()}
    at_end = {}
    in_flight = {}  # (partition, offset) -> input CreateTime
    highest = {}  # partition -> highest delivered offset
    processed = [0]
    latency = bc.Histogram()
    topic, every = a["topic"], a["commit_every"]

    def on_assign(c, partitions):
        for p in partitions:
            at_end[p.partition] = False

    def on_revoke(c, partitions):
        for p in partitions:
            at_end.pop(p.partition, None)

    def delivered(partition, offset):
        def callback(err, msg):
            if err is not None:
                raise SystemExit(f"delivery failed: {err}")
            created = in_flight.pop((partition, offset))
            latency.add(bc.now_ms() - created)
            if offset > highest.get(partition, -1):
                highest[partition] = offset
            processed[0] += 1
            if processed[0] % every == 0:
                consumer.commit(offsets=[TopicPartition(topic, p, o + 1) for p, o in highest.items()],
                                asynchronous=True)
        return callback

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    start = time.monotonic()
    while not bc.stopping:
        msg = consumer.poll(1.0)
        if msg is None:
            for _, producer in outputs.values():
                producer.poll(0)
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                at_end[msg.partition()] = True
                if not a["live"] and at_end and all(at_end.values()):
                    for _, producer in outputs.values():
                        producer.flush(60)
                    if not in_flight:
                        break
            continue
        at_end[msg.partition()] = False
        event = deserialize(msg.value(), in_ctx)
        destination = event["destination_service_type"]
        if destination not in outputs:
            raise SystemExit(f"No destination for {destination}.")
        out_topic, producer = outputs[destination]
        value = {"producer_service_id": event["origin_service_id"],
                 "processor_service_id": a["processor_id"],
                 "destination_type": destination,
                 "producer_event_timestamp": event["event_timestamp"],
                 "processor_event_timestamp": bc.now_ms(),
                 "payload": event["payload"]}
        in_flight[(msg.partition(), msg.offset())] = msg.timestamp()[1]
        producer.produce(out_topic, key=msg.key(), value=serialize(value, out_ctx[destination]),
                         on_delivery=delivered(msg.partition(), msg.offset()))
        producer.poll(0)
    for _, producer in outputs.values():
        producer.flush(60)
    if highest:
        consumer.commit(offsets=[TopicPartition(topic, p, o + 1) for p, o in highest.items()],
                        asynchronous=False)
    consumer.close()
    bc.report(processed[0], time.monotonic() - start, latency)


if __name__ == "__main__":
    main(bc.args(sys.argv[1:], brokers="127.0.0.1:19092", registry="", topic="", group="", prefix="",
                 processor_id="event-processor-1", commit_every=5, live=0))
