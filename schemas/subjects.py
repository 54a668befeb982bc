"""NATS subject names, and the validation that keeps ids from escaping a subject."""

from __future__ import annotations

import re

import msgspec

_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_PREFIX = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


class InvalidId(ValueError):
    """An id would break a subject (it holds `.`, `*`, `>`, whitespace, or is empty/too long)."""

    def __init__(self, kind: str, value: str) -> None:
        super().__init__(f"invalid {kind} id {value!r}: use 1-128 of A-Z a-z 0-9 _ -")
        self.kind = kind
        self.value = value


def validate_id(value: str, kind: str = "session") -> str:
    """Return `value` if it is safe inside a subject, else raise `InvalidId`."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidId(kind, str(value))
    return value


def partition_of(session_id: str, partitions: int) -> int:
    """The command partition of a session: what the stream's `partition(n,1)` transform computes.

    nats-server hashes the wildcard token with 32-bit FNV-1a, modulo the number
    of partitions; computing the same here lets the relay follow the leases of
    command partitions. With no partitions (NATS < 2.10) everything is partition 0.
    """
    if partitions <= 0:
        return 0
    digest = 0x811C9DC5
    for byte in session_id.encode():
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    return digest % partitions


class Subjects(msgspec.Struct, frozen=True):
    """All subjects under one prefix (one prefix per tenant)."""

    prefix: str = "agentbus"

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.prefix):
            raise ValueError(f"invalid subject prefix {self.prefix!r}")

    @property
    def sessions_create(self) -> str:
        return f"{self.prefix}.sessions.create"

    @property
    def agents_list(self) -> str:
        """Request/reply: the configured agents (`schemas.agents`)."""
        return f"{self.prefix}.agents.list"

    def session_cmd(self, session_id: str) -> str:
        return f"{self.prefix}.session.{validate_id(session_id)}.cmd"

    def session_evt(self, session_id: str) -> str:
        return f"{self.prefix}.session.{validate_id(session_id)}.evt"

    def session_events(self, session_id: str) -> str:
        """Request/reply: the session's persisted events, answered from the log (`schemas.history`)."""
        return f"{self.prefix}.session.{validate_id(session_id)}.events"

    def actor(self, kind: str, actor_id: str) -> str:
        return f"{self.prefix}.actor.{validate_id(kind, 'actor kind')}.{validate_id(actor_id, kind)}"

    def all_actors(self, kind: str) -> str:
        """The wildcard subject of every actor of `kind` (what a queue group of workers serves)."""
        return f"{self.prefix}.actor.{validate_id(kind, 'actor kind')}.*"

    @property
    def all_session_cmds(self) -> str:
        return f"{self.prefix}.session.*.cmd"

    @property
    def all_session_events(self) -> str:
        """The wildcard subject of every session's events request (what a queue group of workers serves)."""
        return f"{self.prefix}.session.*.events"

    def partitioned_cmd(self, partition: int | str = "*", token: str = "part") -> str:
        """The subject a command is stored under once the stream has mapped it to a partition.

        `token` names the layout (`schemas.layout.Layout.stored_token`); the first one is `part`.
        """
        return f"{self.prefix}.{token}.{partition}.session.*.cmd"

    @property
    def cmd_stream(self) -> str:
        """The JetStream stream capturing session commands (one per prefix)."""
        suffix = "" if self.prefix == "agentbus" else "_" + re.sub(r"[^A-Za-z0-9]", "_", self.prefix).upper()
        return f"AGENTBUS_CMD{suffix}"

    @staticmethod
    def session_of(subject: str) -> str:
        """Return the session id named in a session command or feed subject."""
        parts = subject.split(".")
        return validate_id(parts[parts.index("session") + 1])
