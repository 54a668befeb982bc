"""Configuration of agents, skills, LLM endpoints and experts, read from TOML.

The default file ships with the package (`actors/default_config.toml`);
`AGENTBUS_CONFIG` names another one. Everything is validated once at start-up
with msgspec, so a typo fails the start with a clear message, not a turn later.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from schemas import ExecutionMode

from .errors import ActorError
from .mcp import McpServerConfig, check_servers

DEFAULT_CONFIG = Path(__file__).with_name("default_config.toml")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ConfigError(ActorError):
    """The configuration file is missing or invalid; the text says where."""


class LLMEndpoint(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An LLM provider: `offline`, or an OpenAI-compatible `/v1/chat/completions` server."""

    kind: Literal["offline", "openai"] = "offline"
    base_url: str | None = None
    api_key_env: str | None = None
    model: str = "offline"
    timeout: float = 60.0


class AgentConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An agent sessions can be bound to.

    `fallback` names the endpoints tried, in order, when `llm` fails (the
    recovery tiers); when they fail too, the emergency tier answers with a
    structured error. `max_steps` bounds the ReAct loop (model calls per turn).
    """

    system_prompt: str = "You are a helpful assistant."
    description: str = ""
    """What the agent is for, as a client's agent picker shows it."""
    llm: str = "default"
    model: str | None = None
    tools: list[str] = []
    execution_mode: ExecutionMode = "react"
    fallback: list[str] = []
    max_steps: int = 8
    tool_choice: str | None = None
    """A tool the first model call of each turn must call: for small models that would not choose one."""
    mcp: list[str] = []
    """MCP servers (`[mcp.<name>]`) whose tools the agent is offered beside `tools`."""


class SkillConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A skill chosen by an `@skill:<name>` prefix: its own prompt, tools and model."""

    system_prompt: str
    tools: list[str] = []
    model: str | None = None
    execution_mode: ExecutionMode | None = None
    tool_choice: str | None = None
    """As the agent's: a tool the skill's first model call must call."""
    mcp: list[str] = []
    """As the agent's: the MCP servers whose tools the skill is offered."""


class PhaseConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One phase of a `plan_exec` turn: the tools allowed in it (`*`: all the agent has)."""

    name: str
    tools: list[str] = []
    instructions: str = ""


class PlanExecConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The phase policy of `plan_exec` turns; `advance_phase` and `ask_human` are allowed in every phase.

    With `enabled = false`, a `plan_exec` request runs as a ReAct turn instead.
    """

    enabled: bool = True
    phases: list[PhaseConfig] = msgspec.field(
        default_factory=lambda: [
            PhaseConfig(name="plan", instructions="Plan the steps; call advance_phase when the plan is ready."),
            PhaseConfig(name="execute", tools=["*"], instructions="Carry out the plan with the tools."),
            PhaseConfig(name="verify", instructions="Check the results, then give the final answer."),
        ]
    )


class ExpertTemplate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An expert of boards and teams."""

    avatar: str = ""
    color: str = ""
    persona: str = ""
    is_moderator: bool = False
    llm: str = "default"
    model: str | None = None


class BoardConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Board meeting defaults: rounds when `rounds=` is not given, the experts of a plain `@board`.

    An expert request waits for the role's generation timeout (`[limits]`)
    plus `expert_margin` seconds; `expert_attempts` is how often a board asks
    before it fails.
    """

    max_rounds: int = 5
    default_experts: list[str] = []
    expert_margin: float = 15.0
    expert_attempts: int = 3


class TeamConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Team pipelines: the template a plain `@team` uses, and the bounds of its work.

    `templates` name experts, the first of them the lead. A phase result the
    lead asks to revise is done again at most `max_revisions` times; a failed
    phase or an intervention makes the lead replan at most `max_replans` times.
    An expert request waits for the role's generation timeout plus
    `expert_margin` seconds, and is asked `expert_attempts` times before the
    step fails.
    """

    default_template: str = "dev_team"
    templates: dict[str, list[str]] = {}
    max_phases: int = 8
    max_revisions: int = 1
    max_replans: int = 2
    expert_margin: float = 15.0
    expert_attempts: int = 3


Role = Literal["chat", "speech", "summary", "conclusion", "plan", "phase_result", "review", "synthesis"]
"""What a model call is for; each role has its own generation limits."""


class GenerationLimit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The most one model call may produce: `max_tokens` (also asked of the server) and `timeout` seconds.

    A stream that goes past either is cut, its request cancelled, and what it
    produced so far recorded as truncated; the turn or meeting goes on.
    `prompt_tokens` bounds what is sent: the newest history that fits.
    """

    max_tokens: int = 512
    timeout: float = 90.0
    prompt_tokens: int = 1536


class Limits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Generation limits per role. The defaults fit a small local model (a 2k-token context)."""

    chat: GenerationLimit = GenerationLimit(max_tokens=512, timeout=120.0)
    speech: GenerationLimit = GenerationLimit(max_tokens=256, timeout=90.0)
    summary: GenerationLimit = GenerationLimit(max_tokens=256, timeout=60.0)
    conclusion: GenerationLimit = GenerationLimit(max_tokens=512, timeout=90.0)
    plan: GenerationLimit = GenerationLimit(max_tokens=512, timeout=90.0)
    phase_result: GenerationLimit = GenerationLimit(max_tokens=512, timeout=120.0)
    review: GenerationLimit = GenerationLimit(max_tokens=256, timeout=60.0)
    synthesis: GenerationLimit = GenerationLimit(max_tokens=512, timeout=120.0)

    def of(self, role: Role) -> GenerationLimit:
        limit: GenerationLimit = getattr(self, role)
        return limit


class SessionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Limits of one session's work.

    `max_running_turns` turns may run at once (the seed's per-socket limit);
    a message beyond them is refused (`too_many_turns`). A turn or board that
    has no answer after `work_timeout` seconds is given up and recorded as failed.
    """

    max_running_turns: int = 4
    work_timeout: float = 1800.0
    locale: str = "en"
    """The language of users' texts in a session whose metadata names none (`AGENTBUS_LOCALE` overrides it)."""
    greeting: str = r"(?i)^\s*(hi|hello|hey|hiya|good (morning|afternoon|evening)|你好|您好|嗨|哈喽)\s*[!！.。~～]*\s*$"
    """A message this regular expression matches (and that names no skill or mode) is answered in the
    direct-chat mode: one model call, no tools. Empty: never."""


class ClusterConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the workers of one subject prefix share the command stream (deploy/README.md sizes these).

    `partitions` is P, the number of command partitions: the unit a worker owns,
    so at most P workers take commands. It is stored with the stream; a worker
    started with another P remaps the stream if it is drained (no worker live,
    no command in flight), and otherwise stops saying why.
    `replicas` is the command stream's JetStream replicas (3 on a 3-node cluster).
    A worker that dies has its partitions taken over within `failover_seconds`;
    live workers look for partitions to take or hand over every `rebalance_interval`.
    """

    partitions: int = 8
    replicas: int = 1
    failover_seconds: float = 10.0
    rebalance_interval: float = 1.0


class RetentionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How long closed sessions are kept: a worker erases those closed more than `closed_sessions_days` days ago
    (`projections.retention`), looking every `sweep_interval` seconds. None keeps them for ever (the default)."""

    closed_sessions_days: Annotated[float, msgspec.Meta(gt=0)] | None = None
    sweep_interval: Annotated[float, msgspec.Meta(gt=0)] = 3600.0


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole configuration."""

    llm: dict[str, LLMEndpoint] = {}
    agents: dict[str, AgentConfig] = {}
    skills: dict[str, SkillConfig] = {}
    plan_exec: PlanExecConfig = PlanExecConfig()
    experts: dict[str, ExpertTemplate] = {}
    board: BoardConfig = BoardConfig()
    team: TeamConfig = TeamConfig()
    session: SessionConfig = SessionConfig()
    limits: Limits = Limits()
    cluster: ClusterConfig = ClusterConfig()
    mcp: dict[str, McpServerConfig] = {}
    """MCP servers by name; agents and skills name the ones whose tools they use."""
    retention: RetentionConfig = RetentionConfig()


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
    if locale := os.environ.get("AGENTBUS_LOCALE"):
        config = msgspec.structs.replace(config, session=msgspec.structs.replace(config.session, locale=locale))
    return config


def _check_references(config: Config, path: Path) -> None:
    endpoints = set(config.llm) | {"default"}
    for kind, table in (("agents", config.agents), ("experts", config.experts)):
        for name, entry in table.items():
            if entry.llm not in endpoints:
                raise ConfigError(f"config {path}: {kind}.{name}.llm names unknown endpoint {entry.llm!r}")
    unsafe = [name for name in config.experts if not _SAFE_NAME.fullmatch(name)]
    if unsafe:
        raise ConfigError(
            f"config {path}: expert names must be A-Z a-z 0-9 _ - (they are NATS subject tokens): {unsafe}"
        )
    unknown = [name for name in config.board.default_experts if name not in config.experts]
    if unknown:
        raise ConfigError(f"config {path}: board.default_experts names unknown experts {unknown}")
    for template, names in config.team.templates.items():
        unknown = [name for name in names if name not in config.experts]
        if unknown or not names:
            raise ConfigError(f"config {path}: team.templates.{template} needs known experts, unknown: {unknown}")
    if config.team.templates and config.team.default_template not in config.team.templates:
        raise ConfigError(f"config {path}: team.default_template {config.team.default_template!r} is not a template")
    team = config.team
    if team.max_phases < 1 or team.max_revisions < 0 or team.max_replans < 0 or team.expert_attempts < 1:
        raise ConfigError(f"config {path}: team needs max_phases, expert_attempts >= 1 and no negative bounds")
    if not config.agents:
        raise ConfigError(f"config {path}: declares no agents")
    if problems := check_servers(config.mcp):
        raise ConfigError(f"config {path}: " + "; ".join(problems))
    users = [("agents", name, entry.mcp) for name, entry in config.agents.items()]
    users += [("skills", name, entry.mcp) for name, entry in config.skills.items()]
    for kind, name, servers in users:
        unknown = [server for server in servers if server not in config.mcp]
        if unknown:
            raise ConfigError(
                f"config {path}: {kind}.{name}.mcp names unknown MCP servers {unknown}; known: {sorted(config.mcp)}"
            )
    cluster = config.cluster
    if not 1 <= cluster.partitions <= 1024 or cluster.replicas not in (1, 3, 5):
        raise ConfigError(f"config {path}: cluster needs 1 <= partitions <= 1024 and replicas 1, 3 or 5")
    if cluster.failover_seconds < 2 * cluster.rebalance_interval or cluster.rebalance_interval <= 0:
        raise ConfigError(f"config {path}: cluster.failover_seconds must be at least twice rebalance_interval (> 0)")
    _check_agents(config, path)


def _check_agents(config: Config, path: Path) -> None:
    from .tools import BUILTIN_TOOLS  # tools import the LLM protocol; only checking needs them

    known_tools = set(BUILTIN_TOOLS.names()) | {"*"}
    for name, endpoint in config.llm.items():
        if endpoint.kind == "openai" and not endpoint.base_url:
            raise ConfigError(f"config {path}: llm.{name} is kind 'openai' but has no base_url")
    endpoints = set(config.llm) | {"default"}
    tables = [("agents", name, entry.tools) for name, entry in config.agents.items()]
    tables += [("skills", name, entry.tools) for name, entry in config.skills.items()]
    tables += [("plan_exec.phases", phase.name, phase.tools) for phase in config.plan_exec.phases]
    for kind, name, tools in tables:
        unknown = [tool for tool in tools if tool not in known_tools]
        if unknown:
            raise ConfigError(
                f"config {path}: {kind}.{name}.tools names unknown tools {unknown}; known: {sorted(known_tools - {'*'})}"
            )
    chooses = [("agents", name, entry.tool_choice, entry.tools) for name, entry in config.agents.items()]
    chooses += [("skills", name, entry.tool_choice, entry.tools) for name, entry in config.skills.items()]
    for kind, name, choice, tools in chooses:
        if choice is not None and choice not in tools and "*" not in tools:
            raise ConfigError(f"config {path}: {kind}.{name}.tool_choice {choice!r} is not one of its tools {tools}")
    for name, agent in config.agents.items():
        missing = [endpoint for endpoint in agent.fallback if endpoint not in endpoints]
        if missing:
            raise ConfigError(f"config {path}: agents.{name}.fallback names unknown endpoints {missing}")
        if agent.max_steps < 1:
            raise ConfigError(f"config {path}: agents.{name}.max_steps must be at least 1")
    if config.plan_exec.enabled and not config.plan_exec.phases:
        raise ConfigError(f"config {path}: plan_exec.phases is empty")
    try:
        re.compile(config.session.greeting)
    except re.error as exc:
        raise ConfigError(f"config {path}: session.greeting is not a regular expression: {exc}") from None
    for role in msgspec.structs.fields(Limits):
        limit = config.limits.of(role.name)  # type: ignore[arg-type]
        if limit.max_tokens < 1 or limit.timeout <= 0 or limit.prompt_tokens < 1:
            raise ConfigError(f"config {path}: limits.{role.name} needs max_tokens, prompt_tokens >= 1 and timeout > 0")
