"""Errors of the bus package: one base, subclasses with structured fields."""

from __future__ import annotations


class BusError(Exception):
    """Something failed on the NATS side."""


class RequestFailed(BusError):
    """A request got no usable answer (no responder, timeout, or an undecodable reply)."""

    def __init__(self, subject: str, reason: str) -> None:
        super().__init__(f"request to {subject} failed: {reason}")
        self.subject = subject
        self.reason = reason


class PublishFailed(BusError):
    """JetStream did not acknowledge a published command."""

    def __init__(self, subject: str, reason: str) -> None:
        super().__init__(f"publish to {subject} failed: {reason}")
        self.subject = subject
        self.reason = reason


class MessageTooLarge(PublishFailed):
    """A message is larger than the server's `max_payload`; it can never be published as it is."""

    def __init__(self, subject: str, size: int, limit: int) -> None:
        super().__init__(subject, f"{size} bytes is more than the server's limit of {limit}")
        self.size = size
        self.limit = limit
