"""The Postgres side of agentbus: the event log, migrations, checkpoints and read models.

Only this package runs SQL; the rest of the system uses these names.
"""

from ._append_request import NewEvent
from .checkpoints import Checkpoints
from .database import Engine, create_engine, ensure_database
from .errors import (
    ConcurrencyError,
    CorruptEventError,
    DatabaseError,
    DuplicateEventError,
    EventLogClosedError,
    EventLogError,
    TenantMismatch,
)
from .eventlog import EventLog
from .leases import LeasesLost, PartitionLeases, live_workers
from .migrations import migrate
from .readmodels import MessageView, Projector, ReadModels, SessionView, SkippedCount
from .skipped import SkippedEvent

__all__ = [
    "Checkpoints",
    "ConcurrencyError",
    "CorruptEventError",
    "DatabaseError",
    "DuplicateEventError",
    "Engine",
    "EventLog",
    "EventLogClosedError",
    "EventLogError",
    "LeasesLost",
    "MessageView",
    "NewEvent",
    "PartitionLeases",
    "Projector",
    "ReadModels",
    "SessionView",
    "SkippedCount",
    "SkippedEvent",
    "TenantMismatch",
    "create_engine",
    "ensure_database",
    "live_workers",
    "migrate",
]
