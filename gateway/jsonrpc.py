"""The JSON-RPC 2.0 messages the gateway's protocol endpoints take (`/mcp`, `/a2a/<agent>`), as documented.

The SDKs behind those endpoints validate the messages themselves; these types
only describe them in the OpenAPI document.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class JsonRpcMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A JSON-RPC 2.0 request or notification."""

    jsonrpc: Literal["2.0"]
    method: str
    id: Any = None
    """A string or a number (null or absent: a notification); the SDKs take what JSON-RPC allows."""
    params: dict[str, Any] | None = None


JSON_RPC_ANSWER = {"type": "object", "description": "A JSON-RPC 2.0 response, or its error"}
"""What the endpoints answer (an error too, under the status the SDK gives it)."""
