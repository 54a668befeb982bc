"""Departments as an event-sourced aggregate: admins' commands decided from the department's own stream.

A department's stream (`department-<id>`) holds its creation, members and
quotas. `decide` and `evolve` are pure; `Departments` reads the stream, decides
and appends at the version it read, so two admins changing one department at
once cannot lose either change (the loser reads again and decides again).
"""

from __future__ import annotations

import msgspec

from schemas import validate_id
from schemas.departments import AddMember, CreateDepartment, DepartmentCommand, RemoveMember, SetQuota
from schemas.events import (
    AnyEvent,
    DepartmentCreated,
    DepartmentMemberAdded,
    DepartmentMemberRemoved,
    QuotaSet,
)
from schemas.quotas import Period, QuotaType
from schemas.streams import DEPARTMENTS_SESSION, department_stream
from schemas.subjects import InvalidId

from ._append_request import NewEvent
from .errors import ConcurrencyError
from .eventlog import EventLog

MAX_USER_ID_CHARS = 200
"""A user id (a token's `sub`) as a member is at most this long."""

_ATTEMPTS = 20
"""How often a command is decided again after another admin's write came first."""


class QuotaView(msgspec.Struct, frozen=True, kw_only=True):
    quota_type: QuotaType
    period: Period
    limit: int


class DepartmentState(msgspec.Struct, kw_only=True):
    """What a department's own events say about it. Mutable: `evolve` updates it in place."""

    department_id: str
    version: int = 0
    created: bool = False
    name: str = ""
    members: list[str] = []
    quotas: list[QuotaView] = []


class DepartmentRefused(msgspec.Struct, frozen=True, kw_only=True):
    """The command cannot be carried out; `code` is stable."""

    code: str
    message: str


def evolve(state: DepartmentState, event: AnyEvent) -> DepartmentState:
    """Apply one of the department's own events (mutating and returning `state`)."""
    state.version += 1
    match event:
        case DepartmentCreated(name=name):
            state.created, state.name = True, name
        case DepartmentMemberAdded(user_id=user_id) if user_id not in state.members:
            state.members.append(user_id)
        case DepartmentMemberRemoved(user_id=user_id) if user_id in state.members:
            state.members.remove(user_id)
        case QuotaSet(quota_type=quota_type, period=period, limit=limit):
            kept = [q for q in state.quotas if (q.quota_type, q.period) != (quota_type, period)]
            state.quotas = (
                kept if limit is None else [*kept, QuotaView(quota_type=quota_type, period=period, limit=limit)]
            )
    return state


def decide(state: DepartmentState, command: DepartmentCommand) -> list[AnyEvent] | DepartmentRefused:
    """The events a command makes (none: nothing to change), or why it is refused."""
    department_id = state.department_id
    if isinstance(command, CreateDepartment):
        return [] if state.created else [DepartmentCreated(department_id=department_id, name=command.name)]
    if not state.created:
        return DepartmentRefused(code="unknown_department", message=f"department {department_id!r} does not exist")
    match command:
        case AddMember(user_id=user_id):
            if not user_id or len(user_id) > MAX_USER_ID_CHARS:
                return DepartmentRefused(code="invalid_user_id", message=f"a user id has 1-{MAX_USER_ID_CHARS} chars")
            return (
                []
                if user_id in state.members
                else [DepartmentMemberAdded(department_id=department_id, user_id=user_id)]
            )
        case RemoveMember(user_id=user_id):
            if user_id not in state.members:
                return []
            return [DepartmentMemberRemoved(department_id=department_id, user_id=user_id)]
        case SetQuota(quota_type=quota_type, period=period, limit=limit):
            current = next((q.limit for q in state.quotas if (q.quota_type, q.period) == (quota_type, period)), None)
            if current == limit:
                return []
            return [QuotaSet(department_id=department_id, quota_type=quota_type, period=period, limit=limit)]
    raise TypeError(f"not a department command: {type(command).__name__}")


class Departments:
    """Carries out admins' department commands on the log."""

    def __init__(self, event_log: EventLog) -> None:
        self._event_log = event_log

    async def load(self, department_id: str) -> DepartmentState:
        """The department as its stream says it is now (not `created` if it has no stream)."""
        state = DepartmentState(department_id=department_id)
        for recorded in await self._event_log.read_stream(department_stream(department_id)):
            evolve(state, recorded.event)
        return state

    async def handle(self, command: DepartmentCommand) -> DepartmentState | DepartmentRefused:
        """Decide `command` on the department's current state and record what it makes; return the new state.

        `DatabaseError` (an `EventLogError`) when the log cannot be read or written.
        """
        try:
            validate_id(command.department_id, "department")
        except InvalidId as exc:
            return DepartmentRefused(code="invalid_department_id", message=str(exc))
        for _ in range(_ATTEMPTS):
            state = await self.load(command.department_id)
            decision = decide(state, command)
            if isinstance(decision, DepartmentRefused) or not decision:
                return decision if isinstance(decision, DepartmentRefused) else state
            new = [NewEvent(event=event, session_id=DEPARTMENTS_SESSION) for event in decision]
            try:
                await self._event_log.append(department_stream(command.department_id), new, state.version)
            except ConcurrencyError:
                continue  # another admin wrote first: decide again on what they recorded
            for event in decision:
                evolve(state, event)
            return state
        return DepartmentRefused(code="busy", message="the department kept changing meanwhile; try again")
