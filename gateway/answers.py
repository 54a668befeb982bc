"""How the REST handlers read a request and answer: bodies and queries within the entrance limits, JSON, problems.

Bad input is a 4xx, never a 5xx: a body is read no further than
`limits.MAX_BODY_BYTES`, nesting is bounded, and query numbers are
`limits.Position`/`limits.Count`.
"""

from __future__ import annotations

import http
from typing import Annotated, Any, TypeVar, get_args

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from schemas import limits
from schemas.quotas import QuotaInfo

from .context import GatewayContext
from .health import SERVICE_UNAVAILABLE

_encoder = msgspec.json.Encoder()
B = TypeVar("B")
Q = TypeVar("Q", bound=msgspec.Struct)

Id = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,128}$", description="1-128 of A-Z a-z 0-9 _ -")]
"""An id in a path as `schemas.validate_id` takes it (the handlers check it there; this is its doc)."""

SESSION_PATH = {"session_id": Id}


def json_response(value: object, status: int = 200) -> Response:
    return Response(_encoder.encode(value), status_code=status, media_type="application/json")


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An error body: `detail` as the seed's HTTPException had it, plus a stable `code`."""

    detail: str
    code: str | None = None
    idempotency_key: str | None = None
    """The key of the message refused or not answered in time (`POST …/messages`): resend it with this key."""
    quota_info: QuotaInfo | None = None
    """`quota_exceeded` only: the quota the call would have gone past."""


def problem(
    status: int,
    detail: str,
    code: str | None = None,
    idempotency_key: str | None = None,
    quota_info: QuotaInfo | None = None,
) -> Response:
    body = Problem(detail=detail, code=code, idempotency_key=idempotency_key, quota_info=quota_info)
    return json_response(body, status)


REFUSAL_STATUS = {limits.TOO_LARGE: 413, limits.INVALID_TEXT: 422, limits.TOO_DEEP: 422}


async def http_error(request: Request, exc: Exception) -> Response:
    """Answer the router's own refusals (no such path: 404, no such method: 405) with a `Problem` too."""
    assert isinstance(exc, HTTPException)
    code = http.HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
    response = problem(exc.status_code, exc.detail, code)
    response.headers.update(exc.headers or {})
    return response


def refused(refusal: limits.Refusal) -> Response:
    """The answer to a command that breaks an entrance limit: 413 when too large, else 422."""
    return problem(REFUSAL_STATUS.get(refusal.code, 422), refusal.message, refusal.code)


async def bounded_body(request: Request, limit: int = limits.MAX_BODY_BYTES) -> bytes | Response:
    """The request's body, read no further than `limit` bytes; past it, the 413 to answer."""
    too_large = problem(413, f"the body is larger than {limit} bytes", limits.TOO_LARGE)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: Request, body_type: type[B]) -> B | Response:
    """The request's JSON body as `body_type` (an empty body is `{}`); else the 413 or 422 to answer."""
    raw = await bounded_body(request)
    if isinstance(raw, Response):
        return raw
    try:
        return msgspec.json.decode(raw or b"{}", type=body_type)
    except RecursionError:  # msgspec stops at the interpreter's recursion limit, deep inside a skipped field too
        return problem(422, "the body is nested too deeply", limits.TOO_DEEP)
    except msgspec.DecodeError as exc:  # ValidationError included
        return problem(422, f"invalid body: {exc}", "invalid_body")


def parse_query(request: Request, query_type: type[Q]) -> Q:
    """The query string as `query_type`, whose fields (bounds included) are the documented parameters.

    A bad value, an empty one included (`?after=`), raises `msgspec.ValidationError`.
    """
    params = dict(request.query_params)
    for field in msgspec.structs.fields(query_type):
        # Lax conversion reads `null` as None, but an optional parameter's None is its absence, not a value.
        if params.get(field.encode_name) == "null" and not _takes_text(field.type):
            raise msgspec.ValidationError(f"Expected a value, got `null` - at `$.{field.encode_name}`")
    return msgspec.convert(params, query_type, strict=False)


def _takes_text(annotation: Any) -> bool:
    """Whether a field of this type (through unions and `Annotated`) takes a string as it is."""
    if annotation is str:
        return True
    return any(_takes_text(arg) for arg in get_args(annotation))


async def unavailable(ctx: GatewayContext, *, database: bool = True) -> Response | None:
    """The 503 to answer while NATS or the database is down (see `Health`), else None.

    `database=False` for a handler that has just read the database (its failure would have raised).
    """
    reason = await ctx.health.unavailable(ctx.bus, ctx.event_log, database=database)
    return None if reason is None else problem(503, reason, SERVICE_UNAVAILABLE)


def answers(ok: Any, *errors: int) -> dict[int, Any]:
    """The responses of a route under /api/v1/chat: `ok`, a `Problem` for each of `errors`, 401 and 503."""
    return {200: ok, **dict.fromkeys((*errors, 401, 503), Problem)}
