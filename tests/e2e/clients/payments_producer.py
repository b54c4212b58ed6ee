"""A third-party producer whose .proto imports a file of its own: confluent-kafka's
ProtobufSerializer registers acme/money.proto under a subject of its own and the
Payment schema with a reference to it (and to google/protobuf/timestamp.proto), as it
does for any user import. The two files are built at run time (no protoc needed).
Prints the payments it sent as JSON on stdout.

usage: payments_producer.py BROKERS REGISTRY_URL TOPIC COUNT"""
import json
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

F = descriptor_pb2.FieldDescriptorProto


def payment_class():
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    money = descriptor_pb2.FileDescriptorProto(name="acme/money.proto", package="acme", syntax="proto3")
    m = money.message_type.add(name="Money")
    m.field.add(name="currency", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="units", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    pool.Add(money)
    payment = descriptor_pb2.FileDescriptorProto(name="acme/payment.proto", package="acme", syntax="proto3",
                                                 dependency=["acme/money.proto",
                                                             "google/protobuf/timestamp.proto"])
    p = payment.message_type.add(name="Payment")
    p.field.add(name="id", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    p.field.add(name="amount", number=2, type=F.TYPE_MESSAGE, type_name=".acme.Money", label=F.LABEL_OPTIONAL)
    p.field.add(name="at", number=3, type=F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp",
                label=F.LABEL_OPTIONAL)
    pool.Add(payment)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("acme.Payment"))


def serializer(payment, registry_url):
    return ProtobufSerializer(payment, SchemaRegistryClient({"url": registry_url}),
                              {"use.deprecated.format": False})


def main(brokers, registry_url, topic, count):
    Payment = payment_class()
    serialize = serializer(Payment, registry_url)
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
    sent = []
    for i in range(count):
        p = Payment(id=f"pay-{i}")
        p.amount.currency = ("EUR", "USD", "JPY")[i % 3]
        p.amount.units = i * 7
        p.at.seconds = 1733011200 + i
        producer.produce(topic, serialize(p, SerializationContext(topic, MessageField.VALUE)))
        producer.poll(0)
        sent.append({"id": p.id, "currency": p.amount.currency, "units": p.amount.units})
    if producer.flush(30) != 0:
        sys.exit("not every payment was delivered")
    print(json.dumps(sent))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
