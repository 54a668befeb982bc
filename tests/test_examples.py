"""The example clients of examples/ work against a real `agentbus up`, speaking NATS alone.

Each creates a session, publishes one message twice with one idempotency key,
follows the live subject to the answer, and catches up over the events request:
JetStream acks the second publish as a duplicate and the log holds the message once.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.system import System

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NODE_DIR = EXAMPLES / "node"
NPM_CACHE = Path.home() / ".cache" / "agentbus" / "npm"
"""npm's cache for the Node example, so the packages are downloaded once per machine."""


def client_env(system: System) -> dict[str, str]:
    """What a service needs to find agentbus: the NATS URL and the subject prefix, nothing else of it."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AGENTBUS_")}
    env.update(AGENTBUS_NATS_URL=system.nats_url, AGENTBUS_SUBJECT_PREFIX=system.env["AGENTBUS_SUBJECT_PREFIX"])
    return env


def summary_of(run: subprocess.CompletedProcess[str]) -> dict:
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    return json.loads(run.stdout.strip().splitlines()[-1])


def check(summary: dict, text: str) -> None:
    assert summary["ok"] is True
    assert [ack["duplicate"] for ack in summary["acks"]] == [False, True]
    assert summary["acks"][0]["sequence"] == summary["acks"][1]["sequence"]
    assert summary["user_messages"] == 1
    assert f'You said: "{text}"' in summary["answer"]
    assert 0 < summary["live_events"] <= summary["events"]  # session_created may be published before the subscription


def npm_installed() -> None:
    """Install the Node example's locked packages into examples/node/node_modules, once (under a lock)."""
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    wanted = lock["packages"]["node_modules/nats"]["version"]
    installed = NODE_DIR / "node_modules" / "nats" / "package.json"
    NPM_CACHE.mkdir(parents=True, exist_ok=True)
    with open(NPM_CACHE.parent / "npm-install.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # other test runs on this machine may be installing it too
        if installed.is_file() and json.loads(installed.read_text())["version"] == wanted:
            return
        run = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"],
            cwd=NODE_DIR,
            env={**os.environ, "npm_config_cache": str(NPM_CACHE)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, f"npm ci failed in {NODE_DIR}:\n{run.stdout}\n{run.stderr}"


def test_the_python_client_chats_over_nats_and_its_retried_message_is_recorded_once(system: System) -> None:
    text = "hello from the Python example"
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / "python" / "client.py"), text, "--key", "py-1"],
        env=client_env(system),
        capture_output=True,
        text=True,
        timeout=90,
    )
    check(summary_of(run), text)


def test_the_python_client_imports_nothing_of_agentbus() -> None:
    source = (EXAMPLES / "python" / "client.py").read_text()
    imported = {line.split()[1].split(".")[0] for line in source.splitlines() if line.startswith(("import ", "from "))}
    # nkeys is what nats-py signs a credential's nonce with; the example reads its public key for the inbox prefix
    # and signs its commands with it (base64 for the signature's header).
    allowed = {"__future__", "argparse", "asyncio", "base64", "json", "os", "sys", "uuid", "pathlib", "typing"}
    allowed |= {"nats", "nkeys"}
    assert imported <= allowed


def test_the_node_client_chats_over_nats_and_its_retried_message_is_recorded_once(system: System) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for examples/node (install Node.js 18 or later)")
    npm_installed()
    text = "hello from the Node example"
    run = subprocess.run(
        ["node", "client.mjs", text, "--key", "node-1"],
        cwd=NODE_DIR,
        env=client_env(system),
        capture_output=True,
        text=True,
        timeout=90,
    )
    check(summary_of(run), text)
