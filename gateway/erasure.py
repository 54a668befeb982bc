"""`DELETE /sessions/{id}?erase=true`: an admin or the service erases a session (`projections.erasure`).

Anyone else is answered exactly as for a session that does not exist, so an
erase reveals nothing either. The answer comes once the read models no
longer show the session; its commands and uploads go when a worker relays the
tombstone (`bus.erasure`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from projections.erasure import Erased, erase_session
from schemas import InvalidId, validate_id

from .answers import problem
from .auth import caller_of, sees_all
from .context import GatewayContext

ANONYMOUS = "anonymous"
"""Who an erasure is recorded as when no credential is configured (everything open)."""


async def erase(request: Request) -> Erased | Response:
    """Erase the session named in the path; what was done, or the 400/404 to answer."""
    ctx: GatewayContext = request.app.state.ctx
    try:
        session_id = validate_id(request.path_params["session_id"])
    except InvalidId as exc:
        return problem(400, str(exc), "invalid_session_id")
    caller = caller_of(request)
    if not sees_all(caller):  # a user: as if the session did not exist, whether it does or not
        return problem(404, f"Session '{session_id}' not found", "unknown_session")
    erased = await erase_session(ctx.event_log.engine, session_id, by=caller.id if caller else ANONYMOUS)
    if erased is None:
        return problem(404, f"Session '{session_id}' not found", "unknown_session")
    await ctx.read_models.wait_caught_up(ctx.event_log)
    return erased
