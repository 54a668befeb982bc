"""The actor runtime: actors, the host that runs them, and the event-sourced base the families share."""

from .actor import Actor
from .eventsourced import DrivenActor, EventSourcedActor
from .host import ActorHost

__all__ = ["Actor", "ActorHost", "DrivenActor", "EventSourcedActor"]
