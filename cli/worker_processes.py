"""`agentbus up --workers N`: N `agentbus worker` processes beside the gateway, on the embedded services.

They run in our process group, so Ctrl-C reaches them as it reaches us: each
stops itself (`agentbus worker`'s bounded stop) while we wait for them before
the services go. If we die, even with kill -9, the kernel stops them too. A
worker that dies by itself is restarted, as the embedded servers are; until it
is back the others own its partitions.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from bus.embedded import die_with_parent
from projections import Engine, live_workers

RESTART_DELAY = 1.0
"""Seconds before a worker that died is started again."""
READY_POLL = 0.1


class WorkerProcesses:
    """N `agentbus worker` children on the given services."""

    def __init__(self, count: int, env: Mapping[str, str], data_dir: Path) -> None:
        self.count = count
        self._env = dict(env)
        self._processes: list[subprocess.Popen[bytes] | None] = [None] * count
        # The services come from `env`; the data dir names them in `ps` as workers of this `up`.
        self._command = [str(Path(sys.executable).parent / "agentbus"), "worker", "--data-dir", str(data_dir)]

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes if process is not None]

    def start(self) -> None:
        for index in range(self.count):
            self._start(index)

    async def ready(self, engine: Engine, prefix: str, event: asyncio.Event) -> None:
        """Set `event` once all of them are live members (each holds its membership lock).

        Polled: PostgreSQL has no event for a lock being taken.
        """
        while True:
            if len(await live_workers(engine, prefix)) >= self.count:
                event.set()
                return
            await asyncio.sleep(READY_POLL)

    async def supervise(self) -> None:
        """Restart a worker that ended without being asked to; runs until cancelled."""
        while True:
            await asyncio.sleep(RESTART_DELAY)
            for index, process in enumerate(self._processes):
                if process is not None and process.poll() is not None:
                    print(f"agentbus: worker {index + 1} (pid {process.pid}) ended with {process.returncode}; "
                          "restarting it", flush=True)  # fmt: skip
                    self._start(index)

    async def stop(self, timeout: float) -> None:
        """Ask each to stop (SIGINT; a Ctrl-C already did) and wait `timeout` seconds; then kill what is left."""
        running = [process for process in self._processes if process is not None and process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGINT)
        waits = [asyncio.create_task(asyncio.to_thread(process.wait)) for process in running]
        if waits:
            await asyncio.wait(waits, timeout=timeout)
        for process in running:
            if process.poll() is None:
                print(f"agentbus: worker pid {process.pid} did not stop within {timeout:g}s; killed", flush=True)
                process.kill()
        await asyncio.gather(*waits)

    def _start(self, index: int) -> None:
        self._processes[index] = subprocess.Popen(
            self._command, env={**os.environ, **self._env}, preexec_fn=die_with_parent
        )
