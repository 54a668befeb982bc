"""The gateway: a thin Starlette app that turns HTTP/WebSocket into bus commands and reads read models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .context import GatewayContext

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["GatewayContext", "create_app"]


def __getattr__(name: str) -> Any:
    # The app is imported when asked for, not with the package: a command that needs one module of it
    # (`agentbus publish` takes gateway.feed) would otherwise load every route, the MCP and the A2A SDKs.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
