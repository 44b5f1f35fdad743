"""ForestGate's private protobuf descriptor pool (see protos/generate.py for why it is private)."""

from google.protobuf import descriptor_pool, timestamp_pb2

POOL = descriptor_pool.DescriptorPool()

# Well-known types our protos import live in protobuf's default pool; a private pool needs its
# own copy before any file that depends on them is added.
for _module in (timestamp_pb2,):
    POOL.AddSerializedFile(_module.DESCRIPTOR.serialized_pb)
