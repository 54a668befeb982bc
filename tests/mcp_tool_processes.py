"""Helpers that run `tests/mcp_tool_server.py`: its config over stdio, and an HTTP server as a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from actors.mcp import McpServerConfig

SERVER = Path(__file__).with_name("mcp_tool_server.py")


def stdio_config(starts: Path, **fields: Any) -> McpServerConfig:
    """The test server run over stdio, logging each start to `starts`."""
    return McpServerConfig(
        command=sys.executable, args=[str(SERVER), "stdio"], env={"MCP_TEST_STARTS": str(starts)}, **fields
    )


def starts(path: Path) -> list[int]:
    """The pids of the test server's starts so far."""
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HttpServer:
    """The test server over streamable HTTP, in its own process group, on a free port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> HttpServer:
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER), "http", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not _accepts(self.port):  # the server is up once its port takes connections
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the MCP test server did not listen on {self.port}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
