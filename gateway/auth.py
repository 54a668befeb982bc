"""API-key authentication, compared in constant time, for REST and WebSocket alike."""

from __future__ import annotations

import hmac

from starlette.requests import HTTPConnection


def presented_key(conn: HTTPConnection) -> str | None:
    """The key a client presented: `X-API-Key`, `Authorization: Bearer`, or `?api_key=`."""
    header = conn.headers.get("x-api-key")
    if header:
        return header
    bearer = conn.headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        return bearer[7:].strip()
    return conn.query_params.get("api_key")


def authorized(conn: HTTPConnection, api_key: str | None) -> bool:
    """True when no key is configured, or the presented one matches it."""
    if not api_key:
        return True
    given = presented_key(conn)
    return given is not None and hmac.compare_digest(given.encode(), api_key.encode())
