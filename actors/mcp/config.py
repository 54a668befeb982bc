"""How an MCP server is configured (`[mcp.<name>]`), and which policy a tool of it gets.

A server is a command run over stdio (with arguments and environment) or a
streamable-HTTP URL (with headers). Its `tools` table maps globs of the
server's tool names to a policy; the policy decides whether the model is
offered a tool, and whether the user must confirm each call.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
from pathlib import Path
from typing import Literal

import msgspec

Policy = Literal["allow", "confirm", "deny"]
"""`allow`: offered and run; `confirm`: offered, run only once the user approves; `deny`: never offered."""

SEPARATOR = "__"
"""Between a server's name and its tool's name in the name the model sees (`files__read_file`)."""
MAX_CALL_TIMEOUT = 30.0
"""The longest a call may be given: the turn cuts every tool call at 30 s (`actors.turn.driver.TOOL_TIMEOUT`)."""
MAX_RESULT_BYTES = 64 * 1024
"""The most any server's `max_result_bytes` may allow: a result is recorded as an event and goes into the prompt."""

MIN_RESULT_BYTES = 256
"""Room for some text beside the note that says a result was cut."""

_SERVER_NAME = re.compile(r"[A-Za-z0-9-]+(_[A-Za-z0-9-]+)*")
"""Letters, digits, `-` and single `_`, so `<server>__<tool>` splits one way only."""
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_GLOB = re.compile(r"[A-Za-z0-9_.\-/*?\[\]!]+")
_POLICIES: tuple[Policy, ...] = ("allow", "confirm", "deny")
"""From the most to the least permissive."""
_STRICTNESS: dict[str, int] = {policy: rank for rank, policy in enumerate(_POLICIES)}


class McpServerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One MCP server: `command` (+ `args`, `env`, `cwd`) over stdio, or `url` (+ `headers`) over streamable HTTP.

    `timeout` bounds each call (and the listing of its tools), `start_timeout`
    the start (a process to spawn, a package to fetch, the handshake).
    `tools` maps a glob of tool names to a policy; the longest matching glob
    wins (an exact name is the longest), the stricter policy on a tie, and
    `default_policy` applies to tools no glob matches.
    """

    command: str | None = None
    args: list[str] = []
    env: dict[str, str] = {}
    """Set for the server over a minimal inherited environment (HOME, PATH, USER, …), as the SDK does.

    Here and in `headers`, `${NAME}` is the worker's environment variable NAME, so secrets stay out of the file."""
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = {}
    timeout: float = 30.0
    start_timeout: float = 60.0
    max_result_bytes: int = 16 * 1024
    """A result longer than this is cut (on a character boundary) and says so."""
    tools: dict[str, str] = {}
    """Checked by `check_servers` rather than typed `Policy`, so a wrong one is named with its glob."""
    default_policy: Policy = "allow"

    def policy(self, tool: str) -> Policy:
        """The policy of the server's tool `tool`."""
        matching = [(len(glob), _STRICTNESS[policy]) for glob, policy in self.tools.items() if _matches(glob, tool)]
        return _POLICIES[max(matching)[1]] if matching else self.default_policy


def expanded(values: dict[str, str]) -> dict[str, str]:
    """`values` with each `${NAME}` replaced by the environment variable NAME (checked at load: it is set)."""
    return {key: _REFERENCE.sub(lambda found: os.environ[found.group(1)], value) for key, value in values.items()}


def _unset(values: dict[str, str]) -> list[str]:
    return sorted({name for value in values.values() for name in _REFERENCE.findall(value) if name not in os.environ})


def _matches(glob: str, name: str) -> bool:
    return glob == name or fnmatch.fnmatchcase(name, glob)


def check_servers(servers: dict[str, McpServerConfig]) -> list[str]:
    """What is wrong with the `[mcp]` servers, one sentence each (empty when nothing is)."""
    problems: list[str] = []
    for name, server in servers.items():
        where = f"mcp.{name}"
        if not _SERVER_NAME.fullmatch(name) or len(name) > 32:
            problems.append(f"{where}: a server name is 1 to 32 of A-Z a-z 0-9 - and single _ (it prefixes tool names)")
        if (server.command is None) == (server.url is None):
            problems.append(f"{where} needs either command (a program run over stdio) or url (streamable HTTP)")
        elif server.command is not None:
            problems += _check_command(where, server)
        elif server.url is not None and not server.url.startswith(("http://", "https://")):
            problems.append(f"{where}.url must be an http:// or https:// URL, not {server.url!r}")
        if server.url is not None and (server.args or server.env or server.cwd):
            problems.append(f"{where}: args, env and cwd are for a command; a url server takes headers")
        if server.command is not None and server.headers:
            problems.append(f"{where}: headers are for a url server; a command takes env")
        for key, values in (("env", server.env), ("headers", server.headers)):
            if unset := _unset(values):
                problems.append(f"{where}.{key} names environment variables that are not set: {unset}")
        if not 0 < server.timeout <= MAX_CALL_TIMEOUT or server.start_timeout <= 0:
            problems.append(f"{where} needs 0 < timeout <= {MAX_CALL_TIMEOUT:.0f} and start_timeout > 0 (seconds)")
        if not MIN_RESULT_BYTES <= server.max_result_bytes <= MAX_RESULT_BYTES:
            problems.append(f"{where}.max_result_bytes must be {MIN_RESULT_BYTES} to {MAX_RESULT_BYTES}")
        for glob, policy in server.tools.items():
            if not _is_glob(glob):
                problems.append(f"{where}.tools: {glob!r} is not a glob of tool names")
            if policy not in _STRICTNESS:
                problems.append(f"{where}.tools[{glob!r}] is {policy!r}; a policy is one of {', '.join(_POLICIES)}")
    return problems


def _check_command(where: str, server: McpServerConfig) -> list[str]:
    assert server.command is not None
    if not server.command.strip():
        return [f"{where}.command is empty"]
    # Found now rather than at the first turn that needs it: a typo stops the start, like any other.
    cwd = Path(server.cwd) if server.cwd else None
    if cwd is not None and not cwd.is_dir():
        return [f"{where}.cwd {server.cwd!r} is not a directory"]
    env = {} if _unset(server.env) else expanded(server.env)  # an unset reference is reported on its own
    found = shutil.which(server.command, path=env.get("PATH")) or _relative_program(server.command, cwd)
    if found is None:
        return [f"{where}.command {server.command!r} is not an executable program (not found on PATH)"]
    return []


def _relative_program(command: str, cwd: Path | None) -> str | None:
    if "/" not in command or cwd is None:
        return None
    program = cwd / command
    return str(program) if program.is_file() else None


def _is_glob(glob: str) -> bool:
    if not _GLOB.fullmatch(glob):
        return False
    # fnmatch takes an unclosed [ literally; in a policy that is a typo, not a wish.
    depth = 0
    for char in glob:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth not in (0, 1):
            return False
    return depth == 0
