"""ForestGate's private protobuf descriptor pool (see protos/generate.py for why it is private)."""

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
