"""The Transaction message class, built at run time from pipehost's compiled descriptor
set (build/share/pipehost/proto/pipehost.desc), so no protoc-generated Python is needed."""
import os

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def transaction_class(descriptor_set=None):
    path = descriptor_set or os.path.join(
        os.environ.get("PIPEHOST_BUILD_DIR", "build"), "share/pipehost/proto/pipehost.desc")
    files = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as f:
        files.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for proto in files.file:
        pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("Transaction"))
