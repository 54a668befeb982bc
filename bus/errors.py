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
