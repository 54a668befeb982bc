"""The NATS side of agentbus: typed connection, command stream, embedded server."""

from .commands import (
    DEFAULT_PARTITIONS,
    CommandAck,
    CommandConsumer,
    CommandDelivery,
    ensure_command_stream,
    publish_command,
)
from .connection import Bus, TypedSubscription
from .embedded import EmbeddedNats, free_port
from .errors import BusError, MessageTooLarge, PublishFailed, RequestFailed

__all__ = [
    "DEFAULT_PARTITIONS",
    "Bus",
    "BusError",
    "CommandAck",
    "CommandConsumer",
    "CommandDelivery",
    "EmbeddedNats",
    "MessageTooLarge",
    "PublishFailed",
    "RequestFailed",
    "TypedSubscription",
    "ensure_command_stream",
    "free_port",
    "publish_command",
]
