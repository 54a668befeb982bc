"""A real PostgreSQL (from the pgserver wheel) under a data dir, on a Unix socket."""

from __future__ import annotations

import warnings
from pathlib import Path

from .errors import EventLogError

# pgserver asks platformdirs for a runtime dir at import; without XDG_RUNTIME_DIR
# platformdirs warns and falls back to /tmp, which is what we want anyway.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

import pgserver  # noqa: E402  (after the filter above, on purpose)

DATABASE = "agentbus"


class EmbeddedPostgres:
    """PostgreSQL whose data lives in `data_dir`; it listens on a Unix socket only."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: pgserver.PostgresServer | None = None

    def start(self) -> str:
        """Start (or reuse a still-running) server; return the URL of the `agentbus` database."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
        except Exception as exc:  # pgserver raises bare CalledProcessError/AssertionError
            raise EventLogError(f"embedded PostgreSQL failed to start in {self.data_dir}: {exc}") from exc
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
        if "(1 row)" not in exists:
            self._server.psql(f"CREATE DATABASE {DATABASE};")
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise EventLogError("embedded PostgreSQL is not started")
        return self._server.get_uri(DATABASE)

    def stop(self) -> None:
        """Stop the server (data stays in `data_dir`)."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
