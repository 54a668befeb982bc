"""Departments' quotas: what is counted, over which period, and what a refusal tells (the seed's `quota_info`)."""

from __future__ import annotations

from typing import Literal

import msgspec

QuotaType = Literal["requests", "tokens"]
"""`requests`: model calls; `tokens`: their prompt and completion tokens."""
Period = Literal["day", "month"]
"""A quota counts from the start of the current UTC day or month."""


class QuotaInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The quota a call would have gone past, as the seed's `error` frame told it."""

    department_id: str
    quota_type: QuotaType
    period: Period
    limit: int
    current: int
    """What the department had used of it when the call was refused."""
