"""How one recorded event changes the department read models: departments, members, quotas, usage."""

from __future__ import annotations

from datetime import UTC

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.envelope import RecordedEvent
from schemas.events import (
    BoardConcluded,
    DepartmentCreated,
    DepartmentMemberAdded,
    DepartmentMemberRemoved,
    ExpertSpeech,
    ModelCalled,
    QuotaSet,
    RoundSummary,
)

from .tables import rm_department_members, rm_department_usage, rm_departments, rm_quotas
from .teams import ModelCall, is_model_call


async def apply_department(conn: AsyncConnection, recorded: RecordedEvent) -> None:
    """Write what `recorded` changes of departments; applying it twice changes nothing more."""
    match recorded.event:
        case DepartmentCreated(department_id=department_id, name=name):
            row = {"department_id": department_id, "name": name, "created_at": recorded.recorded_at}
            await conn.execute(insert(rm_departments).values(row).on_conflict_do_nothing())
        case DepartmentMemberAdded(department_id=department_id, user_id=user_id):
            row = {"department_id": department_id, "user_id": user_id}
            await conn.execute(insert(rm_department_members).values(row).on_conflict_do_nothing())
        case DepartmentMemberRemoved(department_id=department_id, user_id=user_id):
            members = rm_department_members.c
            await conn.execute(
                delete(rm_department_members).where(members.department_id == department_id, members.user_id == user_id)
            )
        case QuotaSet(department_id=department_id, quota_type=quota_type, period=period, limit=None):
            quotas = rm_quotas.c
            await conn.execute(
                delete(rm_quotas).where(
                    quotas.department_id == department_id, quotas.quota_type == quota_type, quotas.period == period
                )
            )
        case QuotaSet(department_id=department_id, quota_type=quota_type, period=period, limit=int() as limit):
            row = {"department_id": department_id, "quota_type": quota_type, "period": period, "quota_limit": limit}
            upsert = insert(rm_quotas).values(row)
            await conn.execute(upsert.on_conflict_do_update(index_elements=list(rm_quotas.primary_key), set_=row))
        case ModelCalled(charged_to=charged_to) if charged_to:
            await _count(conn, recorded, recorded.event, charged_to)
        case (
            ExpertSpeech(charged_to=charged_to)
            | RoundSummary(charged_to=charged_to)
            | BoardConcluded(charged_to=charged_to)
        ) if charged_to:
            await _count(conn, recorded, recorded.event, charged_to)
        case team_call if is_model_call(team_call) and team_call.charged_to:
            await _count(conn, recorded, team_call, team_call.charged_to)


async def _count(
    conn: AsyncConnection,
    recorded: RecordedEvent,
    call: ModelCalled | ModelCall | ExpertSpeech | RoundSummary | BoardConcluded,
    charged_to: list[str],
) -> None:
    """One usage row per department a model call was counted against, keyed by its event."""
    day = recorded.recorded_at.astimezone(UTC).date()
    tokens = call.prompt_tokens + call.completion_tokens
    rows = [
        {"event_id": recorded.event_id, "department_id": department, "day": day, "tokens": tokens}
        for department in charged_to
    ]
    await conn.execute(insert(rm_department_usage).values(rows).on_conflict_do_nothing())
