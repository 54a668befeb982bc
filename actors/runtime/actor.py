"""What an actor is: an id, a host, and lifecycle hooks the host calls from the actor's own task."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol


class Host(Protocol):
    """What an actor may ask of the host that runs it (`ActorHost` is the one implementation)."""

    def tell(self, kind: str, actor_id: str, message: Any) -> None:
        """Deliver a message without waiting; a full mailbox raises `MailboxFull`."""
        ...

    async def ask(self, kind: str, actor_id: str, message: Any) -> Any:
        """Deliver a message and wait for `handle`'s answer (or its exception)."""
        ...

    def failures(self, kind: str, actor_id: str) -> int:
        """How many incarnations of this actor failed by themselves since it last rested."""
        ...


class Actor:
    """Base class of actors. Subclasses set `kind` and implement the hooks.

    All hooks run in the actor's own task, never concurrently with each other.
    """

    kind: ClassVar[str]

    def __init__(self, actor_id: str, host: Host) -> None:
        self.id = actor_id
        self.host = host

    async def on_activate(self) -> None:
        """Rebuild state before the first message is handled."""

    async def handle(self, message: Any) -> Any:
        """Handle one message; the return value answers an `ask`."""
        raise NotImplementedError

    def busy(self) -> bool:
        """Return True while work is in flight that forbids passivation (e.g. a running turn)."""
        return False

    def log_context(self) -> dict[str, str]:
        """Fields bound to every log line of a message this actor handles (besides `actor`)."""
        return {}

    async def on_passivate(self) -> None:
        """Release resources; runs after the last message, before the actor is forgotten."""
