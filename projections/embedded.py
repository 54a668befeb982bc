"""A real PostgreSQL (the binaries of the pgserver wheel) under a data dir, on a Unix socket only.

`postgres` runs as our own child process, in a session of its own: the
terminal's Ctrl-C (sent to the whole foreground process group) does not reach
it, its parent stops it after its clients closed, and if the parent dies, even
by kill -9, the kernel tells it to shut down. The data dir layout is
pgserver's (the cluster in `data_dir`, its log in `data_dir/log`, the socket
in `data_dir` or, when that path is too long for a socket, in pgserver's
runtime dir), so data dirs made by earlier versions keep working.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import signal
import stat
import subprocess
import time
import warnings
from pathlib import Path

from .errors import EventLogError

# pgserver asks platformdirs for a runtime dir at import; without XDG_RUNTIME_DIR
# platformdirs warns and falls back to /tmp, which is what we want anyway.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

import pgserver  # noqa: E402  (after the filter above, on purpose)
from pgserver.utils import (  # noqa: E402
    ensure_folder_permissions,
    ensure_prefix_permissions,
    ensure_user_exists,
    find_suitable_socket_dir,
)

DATABASE = "agentbus"
SUPERUSER = "postgres"
SYSTEM_USER = "pgserver"
"""The account postgres runs as when we are root (postgres refuses root); pgserver's choice, so old data dirs fit."""

BIN = Path(pgserver.__file__).parent / "pginstall" / "bin"

STOP_TIMEOUT = 3.0
"""Seconds a fast shutdown (SIGINT) gets before an immediate one (SIGQUIT: crash recovery at the next start)."""

_PR_SET_PDEATHSIG = 1


def _shut_down_with_parent() -> None:
    # Runs in the child after it took the postgres account, before exec: if our
    # process dies (even by kill -9), the kernel sends postgres SIGINT, its fast shutdown.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGINT)


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting to be reaped is not)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rpartition(")")[2].split()[0] != "Z"


class EmbeddedPostgres:
    """PostgreSQL whose data lives in `data_dir`; it listens on a Unix socket only.

    The socket dir is chosen at the first start and kept for every restart, so
    that clients reconnect to the server they knew.
    """

    name = "postgres"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self._process: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None
        self._user = SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        """The URL of the `agentbus` database."""
        return self._url(DATABASE)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "log"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self, timeout: float = 60.0) -> str:
        """Start the server (creating the cluster and the `agentbus` database if new); return the database's URL."""
        self._prepare()
        self.spawn()
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                self.stop()
                raise EventLogError(f"embedded PostgreSQL did not start within {timeout}s; see {self.log_path}")
            time.sleep(0.05)
        self._ensure_database()
        return self.url

    def spawn(self) -> None:
        """Start the `postgres` process without waiting for it (see `ready`)."""
        if self._socket_dir is None:
            self._socket_dir = self._choose_socket_dir()
        with open(self.log_path, "ab") as log_file:
            self._process = subprocess.Popen(
                [str(BIN / "postgres"), "-D", str(self.data_dir), "-h", "", "-k", str(self._socket_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                user=self._user,
                start_new_session=True,
                preexec_fn=_shut_down_with_parent,
            )

    def ready(self) -> bool:
        """Whether the server accepts connections; raise `EventLogError` if its process has exited."""
        code = self.exit_code()
        if code is not None:
            raise EventLogError(f"embedded PostgreSQL exited with {code}; see {self.log_path}")
        assert self._process is not None
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        # The file of a server that died before ours may still say "ready": the pid tells them apart.
        return len(lines) >= 8 and lines[0].strip() == str(self._process.pid) and lines[-1].strip() == "ready"

    def exit_code(self) -> int | None:
        """The exit status of a process that ended; None while it runs or before it was started."""
        return None if self._process is None else self._process.poll()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the server (data stays in `data_dir`): a fast shutdown, an immediate one if that takes too long."""
        if self._process is None:
            return
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 2.0), (signal.SIGKILL, None)):
            self._process.send_signal(sig)
            try:
                self._process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self._process = None

    def kill(self) -> None:
        """Shut the server down at once, without waiting (the last resort of a stuck shutdown)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGQUIT)

    def stop_leftover(self) -> None:
        """Stop a postgres that a killed parent left running on this data dir, and forget pgserver's handles.

        Only for the owner of the data dir (the holder of its lock): for anyone
        else, that server may be a live instance's. A postmaster.pid whose
        process is gone is left to postgres, which checks it (and its shared
        memory) itself.
        """
        # pgserver's registry of the processes using the server; a killed one's pid stays in it for ever.
        (self.data_dir / ".handle_pids.json").unlink(missing_ok=True)
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return
        if not cmdline[0].endswith(b"postgres") or str(self.data_dir).encode() not in cmdline:
            return
        for sig, wait in ((signal.SIGINT, 10.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while _running(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _running(pid):
                return

    def _url(self, database: str) -> str:
        if self._socket_dir is None:
            raise EventLogError("embedded PostgreSQL is not started")
        return f"postgresql://{SUPERUSER}:@/{database}?host={self._socket_dir}"

    def _choose_socket_dir(self) -> Path:
        socket_dir = Path(find_suitable_socket_dir(self.data_dir, pgserver.PostgresServer.runtime_path))
        if self._user is not None and socket_dir != self.data_dir:
            ensure_prefix_permissions(socket_dir)
            socket_dir.chmod(0o777)
        return socket_dir

    def _prepare(self) -> None:
        """Create the cluster unless it exists; as root, let the postgres account reach its files (as pgserver does)."""
        if not self.data_dir.parent.is_dir():
            raise EventLogError(f"parent directory of the PostgreSQL data dir does not exist: {self.data_dir.parent}")
        self.data_dir.mkdir(exist_ok=True)
        if self._user is not None:
            ensure_user_exists(self._user)
            ensure_prefix_permissions(self.data_dir)
            ensure_prefix_permissions(BIN)
            readable = stat.S_IRGRP | stat.S_IROTH
            ensure_folder_permissions(BIN, readable | stat.S_IXGRP | stat.S_IXOTH)
            ensure_folder_permissions(BIN.parent / "lib", readable)
            account = pwd.getpwnam(self._user)
            os.chown(self.data_dir, account.pw_uid, account.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if self._user is not None and not self.log_path.exists():
            # The postgres account owns its log, as under pgserver's pg_ctl, so that either can append to it.
            account = pwd.getpwnam(self._user)
            self.log_path.touch()
            os.chown(self.log_path, account.pw_uid, account.pw_gid)

    def _initdb(self) -> None:
        self._run(
            [
                str(BIN / "initdb"),
                "-D",
                str(self.data_dir),
                "--auth=trust",
                "--auth-local=trust",
                "--encoding=utf8",
                "-U",
                SUPERUSER,
            ],
            user=self._user,
        )

    def _ensure_database(self) -> None:
        query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"
        psql = [str(BIN / "psql"), "-X", "-q", "-tA", "-d", self._url("postgres"), "-c"]
        if self._run([*psql, query]).strip() != "1":
            self._run([*psql, f"CREATE DATABASE {DATABASE}"])

    @staticmethod
    def _run(command: list[str], user: str | None = None) -> str:
        try:
            done = subprocess.run(
                command, stdin=subprocess.DEVNULL, capture_output=True, text=True, user=user, timeout=60, check=True
            )
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", None) or exc
            raise EventLogError(f"{Path(command[0]).name} failed: {str(detail).strip()}") from exc
        return done.stdout
