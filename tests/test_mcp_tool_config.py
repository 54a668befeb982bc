"""MCP servers in the configuration: refused at load when wrong, and each tool's policy from the globs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from actors.config import ConfigError, load_config
from actors.mcp import McpServerConfig
from actors.turn.setup import TurnSetup, resolve_setup

AGENT = '[agents.a]\nmcp = ["files"]\n'


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "agents.toml"
    path.write_text(text)
    return load_config(path)


def test_a_stdio_server_and_an_http_server_load_and_agents_name_them(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        f"""
[mcp.files]
command = "{sys.executable}"
args = ["-m", "some_server"]
env = {{ ROOT = "/srv" }}
timeout = 5
[mcp.files.tools]
"write_*" = "confirm"

[mcp.tickets]
url = "https://mcp.example.com/mcp"
headers = {{ Authorization = "Bearer t" }}

[agents.a]
tools = ["calculator"]
mcp = ["files", "tickets"]

[agents.chat]
execution_mode = "direct"
mcp = ["files"]
""",
    )
    setup = resolve_setup(config, "a", "list my files")  # type: ignore[arg-type]
    assert isinstance(setup, TurnSetup) and setup.mcp == ["files", "tickets"] and setup.tools == ["calculator"]
    direct = resolve_setup(config, "chat", "list my files")  # type: ignore[arg-type]
    assert isinstance(direct, TurnSetup) and direct.mcp == []  # a direct turn has no tools at all


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[agents.a]\nmcp = ["nowhere"]\n', "agents.a.mcp names unknown MCP servers ['nowhere']"),
        ("[mcp.files]\nargs = ['x']\n" + AGENT, "mcp.files needs either command"),
        ("[mcp.files]\ncommand = 'no-such-program-here'\n" + AGENT, "'no-such-program-here' is not an executable"),
        ("[mcp.files]\ncommand = 'sh'\nurl = 'http://x/mcp'\n" + AGENT, "mcp.files needs either command"),
        ("[mcp.files]\nurl = 'ftp://x/mcp'\n" + AGENT, "must be an http:// or https:// URL"),
        ("[mcp.files]\ncommand = 'sh'\n[mcp.files.tools]\n'write_[ab' = 'confirm'\n" + AGENT, "is not a glob"),
        ("[mcp.files]\ncommand = 'sh'\n[mcp.files.tools]\n'a b' = 'deny'\n" + AGENT, "is not a glob"),
        (
            "[mcp.files]\ncommand = 'sh'\n[mcp.files.tools]\n'read_*' = 'maybe'\n" + AGENT,
            "tools['read_*'] is 'maybe'; a policy is one of allow, confirm, deny",
        ),
        ("[mcp.files]\ncommand = 'sh'\ntimeout = 600\n" + AGENT, "0 < timeout <= 30"),
        ("[mcp.files]\ncommand = 'sh'\nmax_result_bytes = 10\n" + AGENT, "max_result_bytes must be 256"),
        ("[mcp.my__files]\ncommand = 'sh'\n[agents.a]\n", "a server name is 1 to 32 of"),
        ("[mcp.files]\ncommand = 'sh'\nheaders = { A = 'b' }\n" + AGENT, "headers are for a url server"),
        (
            "[mcp.files]\nurl = 'https://x/mcp'\nheaders = { A = 'Bearer ${MCP_TEST_NEVER_SET}' }\n" + AGENT,
            "mcp.files.headers names environment variables that are not set: ['MCP_TEST_NEVER_SET']",
        ),
    ],
)
def test_a_wrong_mcp_server_is_refused_at_load_with_a_clear_message(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("*", r"\*")):
        load(tmp_path, text)


def test_the_longest_matching_glob_decides_a_tools_policy_and_a_tie_goes_to_the_stricter() -> None:
    server = McpServerConfig(
        command="sh",
        tools={"*": "confirm", "read_*": "allow", "read_secret*": "deny", "write_*": "allow", "*_files": "confirm"},
        default_policy="deny",
    )
    assert server.policy("read_file") == "allow"
    assert server.policy("read_secrets") == "deny"
    assert server.policy("move_file") == "confirm"  # only "*" matches
    assert server.policy("write_files") == "confirm"  # "write_*" and "*_files" are as long: the stricter wins
    assert McpServerConfig(command="sh", default_policy="deny").policy("anything") == "deny"
