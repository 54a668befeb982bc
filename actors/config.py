"""Configuration of agents, skills, LLM endpoints and experts, read from TOML.

The default file ships with the package (`actors/default_config.toml`);
`AGENTBUS_CONFIG` names another one. Everything is validated once at start-up
with msgspec, so a typo fails the start with a clear message, not a turn later.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import msgspec

from schemas import ExecutionMode

from .errors import ActorError

DEFAULT_CONFIG = Path(__file__).with_name("default_config.toml")


class ConfigError(ActorError):
    """The configuration file is missing or invalid; the text says where."""


class LLMEndpoint(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An LLM provider: `offline`, or an OpenAI-compatible `/v1/chat/completions` server."""

    kind: str = "offline"
    base_url: str | None = None
    api_key_env: str | None = None
    model: str = "offline"
    timeout: float = 60.0


class AgentConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An agent sessions can be bound to."""

    system_prompt: str = "You are a helpful assistant."
    llm: str = "default"
    model: str | None = None
    tools: list[str] = []
    execution_mode: ExecutionMode = "react"


class SkillConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A skill chosen by an `@skill:<name>` prefix: its own prompt, tools and model."""

    system_prompt: str
    tools: list[str] = []
    model: str | None = None
    execution_mode: ExecutionMode | None = None


class ExpertTemplate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An expert of boards and teams."""

    avatar: str = ""
    color: str = ""
    persona: str = ""
    is_moderator: bool = False
    llm: str = "default"
    model: str | None = None


class BoardConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Board meeting defaults."""

    max_rounds: int = 5
    default_experts: list[str] = []


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole configuration."""

    llm: dict[str, LLMEndpoint] = {}
    agents: dict[str, AgentConfig] = {}
    skills: dict[str, SkillConfig] = {}
    experts: dict[str, ExpertTemplate] = {}
    board: BoardConfig = BoardConfig()


def load_config(path: str | Path | None = None) -> Config:
    """Load `path`, else `$AGENTBUS_CONFIG`, else the packaged default; raise `ConfigError` on any problem."""
    chosen = Path(path or os.environ.get("AGENTBUS_CONFIG") or DEFAULT_CONFIG)
    try:
        raw = tomllib.loads(chosen.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config {chosen}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {chosen} is not valid TOML: {exc}") from None
    try:
        config = msgspec.convert(raw, type=Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"config {chosen}: {exc}") from None
    _check_references(config, chosen)
    return config


def _check_references(config: Config, path: Path) -> None:
    endpoints = set(config.llm) | {"default"}
    for kind, table in (("agents", config.agents), ("experts", config.experts)):
        for name, entry in table.items():
            if entry.llm not in endpoints:
                raise ConfigError(f"config {path}: {kind}.{name}.llm names unknown endpoint {entry.llm!r}")
    unknown = [name for name in config.board.default_experts if name not in config.experts]
    if unknown:
        raise ConfigError(f"config {path}: board.default_experts names unknown experts {unknown}")
    if not config.agents:
        raise ConfigError(f"config {path}: declares no agents")
