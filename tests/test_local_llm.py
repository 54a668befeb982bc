"""`cli.local_llm.LocalLLM` owns its server like the other embedded services, and says clearly when a build fails."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cli import _llm_build
from cli.local_llm import LocalLLM, LocalLLMError, build_stamp

OWNER = """
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from cli.local_llm import LocalLLM
llm = LocalLLM(log_path=Path({log!r}))
llm.start()
print(llm.pid, flush=True)
time.sleep(600)
"""


def test_the_server_dies_with_its_owner_killed_by_sigkill(local_llm_url: str, tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER.format(log=str(tmp_path / "server.log"))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        server_pid = int(owner.stdout.readline())  # bounded: `start` gives up after START_TIMEOUT
    finally:
        owner.kill()
        owner.wait(10)
    deadline = time.monotonic() + 30
    while _alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(server_pid)


def test_a_built_cache_is_not_built_again(local_llm_url: str) -> None:
    llm = LocalLLM()
    stamp = llm.cache_dir / "built.json"
    before = stamp.stat().st_mtime_ns
    assert llm.ensure_built() == llm.python and llm.built()
    assert stamp.stat().st_mtime_ns == before


def test_a_failed_build_is_an_error_naming_the_step_and_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_llm_build, "LLAMA_CPP_PYTHON", "0.0.0")  # no such release: pip fails at once
    llm = LocalLLM(tmp_path / "cache")
    with pytest.raises(LocalLLMError, match=r"build llama-cpp-python failed with exit status \d+; see .*build\.log"):
        llm.ensure_built()
    assert not llm.built()
    assert "building llama-cpp-python 0.0.0" in capsys.readouterr().err


def test_a_second_builder_waits_for_the_first_and_finds_the_build_done(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    llm = LocalLLM(tmp_path / "cache")
    llm.cache_dir.mkdir()
    first = os.open(llm.cache_dir / "build.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(first, fcntl.LOCK_EX)  # the first builder, building
    with ThreadPoolExecutor(1) as pool:
        second = pool.submit(llm.ensure_built)
        said = ""
        deadline = time.monotonic() + 10
        while "waiting for it" not in said and time.monotonic() < deadline:
            time.sleep(0.05)
            said += capsys.readouterr().err
        assert "another build of the local model server is running" in said
        # The first builder finishes: a venv and the stamp, then it lets go of the lock.
        llm.python.parent.mkdir(parents=True)
        llm.python.touch()
        (llm.cache_dir / "built.json").write_text(json.dumps(build_stamp()))
        os.close(first)
        assert second.result(timeout=10) == llm.python
    assert not llm.build_log.exists()  # the second built nothing


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for init to reap it does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
