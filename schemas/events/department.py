"""Events of a department (`department-<id>`): its members and quotas, as admins set them."""

from __future__ import annotations

from .._base import Event
from ..quotas import Period, QuotaType


class DepartmentCreated(Event, frozen=True, kw_only=True):
    """A department was created."""

    department_id: str
    name: str = ""


class DepartmentMemberAdded(Event, frozen=True, kw_only=True):
    """A user joined a department: its quotas count their model calls (with those of their token's departments)."""

    department_id: str
    user_id: str


class DepartmentMemberRemoved(Event, frozen=True, kw_only=True):
    """A user left a department."""

    department_id: str
    user_id: str


class QuotaSet(Event, frozen=True, kw_only=True):
    """A department's quota of `quota_type` per `period` became `limit` (None: no limit any more)."""

    department_id: str
    quota_type: QuotaType
    period: Period
    limit: int | None


DepartmentEvent = DepartmentCreated | DepartmentMemberAdded | DepartmentMemberRemoved | QuotaSet
