"""The gateway's REST API called in-process (an ASGI transport, no socket), for the protocols it also speaks.

MCP tools and A2A agents are thin callers of REST, so they are refused,
authorized and answered exactly as a REST client with the same credential.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from starlette.types import ASGIApp

API = "/api/v1/chat"
CREDENTIAL_HEADERS = ("authorization", "x-api-key")
"""The request headers that say who calls; they are passed on to the REST calls."""


class RestRefused(Exception):
    """The REST API answered an error: its status, its problem's `detail` and `code`."""

    def __init__(self, status: int, detail: str, code: str) -> None:
        super().__init__(f"{detail} ({code})")
        self.status = status
        self.detail = detail
        self.code = code


def credentials_of(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The credential headers among `headers` (none if there are none)."""
    return {name: value for name, value in (headers or {}).items() if name.lower() in CREDENTIAL_HEADERS}


async def call_rest(app: ASGIApp, method: str, path: str, *, headers: Mapping[str, str], body: object = None) -> Any:
    """Call `API + path` on `app` and return the decoded JSON answer; raise `RestRefused` on an error status."""
    transport = httpx.ASGITransport(app=app)
    # No timeout of our own: the REST API bounds its waits (a turn's answer, a close).
    async with httpx.AsyncClient(transport=transport, base_url="http://agentbus", timeout=None) as client:
        response = await client.request(method, API + path, json=body, headers=dict(headers))
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        detail = problem.get("detail") or response.reason_phrase
        raise RestRefused(response.status_code, detail, problem.get("code", str(response.status_code)))
    return response.json()
