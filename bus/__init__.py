"""The NATS side of agentbus: typed connection, command stream, object store, embedded server."""

from .command_stream import CommandLayouts, ensure_command_stream
from .commands import (
    DEFAULT_PARTITIONS,
    CommandAck,
    CommandConsumer,
    CommandDelivery,
    publish_command,
)
from .connection import Bus, TypedSubscription, nats_servers
from .embedded import EmbeddedNats, free_port
from .errors import BusError, MessageTooLarge, PublishFailed, RequestFailed
from .objects import (
    MAX_UPLOAD_BYTES,
    ObjectBucket,
    ObjectStoreFailed,
    StoredObject,
    is_upload_name,
    new_upload_name,
    uploads,
    uploads_bucket_name,
)

__all__ = [
    "DEFAULT_PARTITIONS",
    "MAX_UPLOAD_BYTES",
    "Bus",
    "BusError",
    "CommandAck",
    "CommandConsumer",
    "CommandDelivery",
    "CommandLayouts",
    "EmbeddedNats",
    "MessageTooLarge",
    "ObjectBucket",
    "ObjectStoreFailed",
    "PublishFailed",
    "RequestFailed",
    "StoredObject",
    "TypedSubscription",
    "ensure_command_stream",
    "free_port",
    "is_upload_name",
    "nats_servers",
    "new_upload_name",
    "publish_command",
    "uploads",
    "uploads_bucket_name",
]
