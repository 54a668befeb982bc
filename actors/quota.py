"""The check before each model call: the caller's departments against their quotas, admins exempt.

An actor asks `admit` before it calls a model and `settle` after: admission
reserves the call's most tokens and one request in the quota store, in one
atomic step however many workers call at once; settling counts what it took
instead. No principal (no users configured) and admins are never counted. A
store that cannot answer refuses the call (`QuotaUnavailable`): fail closed,
since a quota that is not checked is not a quota.
"""

from __future__ import annotations

import msgspec
import structlog

from projections.quotas import QuotaStore, QuotaUnavailable, Reservation
from schemas import Principal
from schemas.quotas import QuotaInfo

from .llm import LLMRequest
from .llm.budget import estimate_tokens

logger = structlog.get_logger("agentbus.quota")

QUOTA_EXCEEDED = "quota exceeded"
"""The message of the seed's `error` frame for a call over quota."""

__all__ = ["QUOTA_EXCEEDED", "Admitted", "QuotaGuard", "QuotaInfo", "QuotaUnavailable", "most_tokens"]


class Admitted(msgspec.Struct, frozen=True, kw_only=True):
    """A call may go ahead; `reservation` is what it holds of its departments' quotas (None: not counted)."""

    reservation: Reservation | None = None

    @property
    def charged_to(self) -> list[str]:
        """The departments the call counts against (what its `model_called` records)."""
        return [] if self.reservation is None else list(self.reservation.departments)


def most_tokens(request: LLMRequest) -> int:
    """The most a call can take: its prompt (estimated) and the answer's `max_tokens`."""
    prompt = sum(estimate_tokens(message.content) for message in request.messages)
    prompt += estimate_tokens(request.system_prompt or "")
    return prompt + (request.max_tokens or 0)


class QuotaGuard:
    """Admits model calls against the quotas of the caller's departments."""

    def __init__(self, store: QuotaStore) -> None:
        self._store = store

    async def admit(self, principal: Principal | None, request: LLMRequest) -> Admitted | QuotaInfo:
        """Reserve the call's share of the caller's quotas, or return the quota it would go past.

        `QuotaUnavailable` when the store does not answer: the call must not be made.
        """
        if principal is None or principal.role == "admin":
            return Admitted()
        outcome = await self._store.reserve(principal.id, principal.departments, most_tokens(request))
        if isinstance(outcome, QuotaInfo):
            logger.info("quota_exceeded", principal=principal.id, department=outcome.department_id)
            return outcome
        return Admitted(reservation=outcome)

    async def settle(self, admitted: Admitted, tokens: int) -> None:
        """Count what the call took; a store that fails now keeps the reservation (it counted more, not less)."""
        if admitted.reservation is None:
            return
        try:
            await self._store.settle(admitted.reservation, tokens)
        except QuotaUnavailable as exc:
            logger.warning("quota_settle_failed", error=str(exc))
