"""Users for the tests of identity and quotas: tokens signed with the secret a test's `agentbus up` verifies."""

from __future__ import annotations

import time

import httpx
import jwt

from tests.system import System

SECRET = "the-test-secret-of-agentbus-users-long-enough-for-hs256"
API_KEY = "the-service-key"
ENV = {"AGENTBUS_JWT_SECRET": SECRET, "AGENTBUS_API_KEY": API_KEY}
"""What an `agentbus up` needs to take the tests' tokens and API key."""


def token(user: str, role: str = "user", departments: tuple[str, ...] = ()) -> str:
    claims = {"sub": user, "role": role, "departments": list(departments), "exp": int(time.time()) + 3600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def as_user(system: System, user: str, role: str = "user", departments: tuple[str, ...] = ()) -> httpx.AsyncClient:
    """A REST client of `system`'s /api/v1/chat that presents `user`'s token."""
    headers = {"Authorization": f"Bearer {token(user, role, departments)}"}
    return httpx.AsyncClient(base_url=system.http_url + "/api/v1/chat", headers=headers, timeout=30)


def as_service(system: System) -> httpx.AsyncClient:
    """A REST client of `system`'s /api/v1/chat that presents the API key (it acts as the service)."""
    return httpx.AsyncClient(base_url=system.http_url + "/api/v1/chat", headers={"X-API-Key": API_KEY}, timeout=30)
