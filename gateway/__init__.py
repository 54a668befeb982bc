"""The gateway: a thin Starlette app that turns HTTP/WebSocket into bus commands and reads read models."""

from .app import create_app
from .context import GatewayContext

__all__ = ["GatewayContext", "create_app"]
