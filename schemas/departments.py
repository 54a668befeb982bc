"""What admins ask of departments: create one, add or remove a member, set a quota (REST and the CLI)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from ._base import Command
from .quotas import Period, QuotaType

Limit = Annotated[int, msgspec.Meta(ge=0, le=2**62)]


class CreateDepartment(Command, frozen=True, kw_only=True):
    """Create a department (creating it again with the same name is a no-op)."""

    department_id: str
    name: str = ""


class AddMember(Command, frozen=True, kw_only=True):
    """Count a user's model calls against the department's quotas too."""

    department_id: str
    user_id: str


class RemoveMember(Command, frozen=True, kw_only=True):
    """Stop counting a user's model calls against the department (their token's departments still count)."""

    department_id: str
    user_id: str


class SetQuota(Command, frozen=True, kw_only=True):
    """Limit a department's `quota_type` per `period` to `limit`; None removes the limit."""

    department_id: str
    quota_type: QuotaType
    period: Period
    limit: Limit | None


DepartmentCommand = CreateDepartment | AddMember | RemoveMember | SetQuota
