"""A plain `pip install agentbus` (no extras) is a complete product: `agentbus up` serves chat over WebSockets.

The test builds a fresh venv, installs a copy of this work tree into it with no
extras, starts `agentbus up` on its embedded NATS and PostgreSQL, and chats
once with a client run by that venv's Python: had the runtime dependencies no
WebSocket library, uvicorn would answer every socket with HTTP 404.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_NOT_SOURCE = shutil.ignore_patterns(
    ".venv", ".git", "*.egg-info", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis",
    ".agentbus", "build", "dist",
)  # fmt: skip

CLIENT = """
import asyncio, json, re, sys
import httpx, websockets

async def main(http_url):
    async with httpx.AsyncClient(base_url=http_url, timeout=30) as client:
        # The chat page and every file it loads, vendored libraries included, ship as package data.
        page = (await client.get("/")).raise_for_status().text
        sources = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
        for src in sources:
            (await client.get(src)).raise_for_status()
        assets = len(sources)
    async with httpx.AsyncClient(base_url=http_url + "/api/v1/chat", timeout=30) as client:
        created = await client.post("/sessions", json={})
        created.raise_for_status()
        session_id = created.json()["session_id"]
    ws_url = http_url.replace("http://", "ws://") + "/api/v1/chat/ws/" + session_id
    async with asyncio.timeout(60), websockets.connect(ws_url) as ws:
        connected = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "message", "content": "hello"}))
        while (frame := json.loads(await ws.recv()))["type"] != "final_answer":
            pass
    print(json.dumps({"connected": connected, "final": frame, "assets": assets}))

asyncio.run(main(sys.argv[1]))
"""


def run(command: list[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{command[:3]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def wait_for_endpoints(process: subprocess.Popen[bytes], endpoints: Path, log: Path, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while not endpoints.exists():
        assert process.poll() is None, f"agentbus up exited with {process.returncode}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"agentbus up did not start within {timeout}s:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)
    return json.loads(endpoints.read_text())


def test_a_venv_with_agentbus_installed_without_extras_chats_over_a_websocket(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCE)
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    run([str(venv / "bin" / "pip"), "install", "--quiet", str(source)], timeout=600)

    # The embedded services, and nothing of this test run's own environment on the path.
    outside = ("AGENTBUS_NATS_URL", "AGENTBUS_DATABASE_URL", "VIRTUAL_ENV", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k not in outside}
    data_dir, log = tmp_path / "data", tmp_path / "up.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(venv / "bin" / "agentbus"), "up", "--port", "0", "--data-dir", str(data_dir)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        endpoints = wait_for_endpoints(process, data_dir / "endpoints.json", log, timeout=120)
        chat = run(
            [str(venv / "bin" / "python"), "-c", CLIENT, endpoints["http_url"]], timeout=90, env=env, cwd=tmp_path
        )
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            raise
    seen = json.loads(chat.stdout)
    page = (REPO / "gateway" / "static" / "index.html").read_text()
    assert seen["assets"] == page.count('="/static/')  # its style sheet, scripts and vendored Markdown libraries
    assert seen["connected"]["type"] == "connected"
    assert seen["final"]["is_final"] is True and 'You said: "hello"' in seen["final"]["content"]
    assert code == 0, log.read_text()[-3000:]
