"""Actors: the runtime, the actor families, LLM providers and tools, the worker and the relay.

- `runtime/`: `Actor`, the `ActorHost` that activates and runs actors, and the
  `EventSourcedActor` base (stream, replay, record, report) every family uses.
- `session/`, `turn/`, `board/`: one package per actor family, each with its
  messages, its pure state and decisions, and its actor class.
- `llm/`: model providers behind one streaming protocol; `tools/`: the tools turns call.
- `worker.py` hosts the actors and takes commands; `relay.py` publishes the log live.
"""

from .errors import ActorError, MailboxFull, ProviderError
from .runtime import Actor, ActorHost, DrivenActor, EventSourcedActor
from .worker import Worker

__all__ = [
    "Actor",
    "ActorError",
    "ActorHost",
    "DrivenActor",
    "EventSourcedActor",
    "MailboxFull",
    "ProviderError",
    "Worker",
]
