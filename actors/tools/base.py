"""What a tool is: a plain async function, a typed argument Struct, and a name to register it by."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from bus import Bus

from ..errors import ActorError
from ..llm import ToolSpec

ToolKind = Literal["function", "ask_human", "advance_phase"]
"""`function` tools run code; the others are answered by the turn itself (a human, the phase policy)."""


class ToolError(ActorError):
    """A tool could not do what it was asked; the message goes back to the model as the tool's result."""


class InvalidArguments(ToolError):
    """The model's arguments do not fit the tool's argument Struct."""

    def __init__(self, tool: str, reason: str) -> None:
        super().__init__(f"invalid arguments for {tool}: {reason}")
        self.tool = tool
        self.reason = reason


@dataclass(frozen=True)
class ToolContext:
    """What a running tool may use besides its arguments: the worker's bus (uploads live in its object store),
    and the call's place in the effect ledger.

    `effect_key` (`<turn_id>:<call_id>`) is the same for every attempt of one call, so a tool that
    reaches an outside service can hand it on for the service to carry the effect out once; `attempt`
    counts the runs of the call (more than 1 after a restart cut an earlier one).
    """

    bus: Bus
    effect_key: str = ""
    attempt: int = 1


@dataclass(frozen=True)
class Tool:
    """One tool the model may call.

    `run` receives the decoded `args` Struct and the `ToolContext`, and returns
    the text the model sees; it raises `ToolError` to report a failure the model should read.
    A tool whose arguments are not a Struct (an MCP server's tool) has `args` None and
    its JSON Schema in `parameters`; `run` then receives the arguments as a dict, which
    the tool checks itself.
    `needs_confirmation` makes the turn ask the user before `run` is called.
    `idempotent`: running it twice has the effect of running it once, so a call cut
    before its result was recorded may simply be run again.
    """

    name: str
    description: str
    args: type[msgspec.Struct] | None
    run: Callable[[Any, ToolContext], Awaitable[str]] | None = None
    needs_confirmation: bool = False
    kind: ToolKind = "function"
    idempotent: bool = False
    parameters: dict[str, Any] | None = None

    def spec(self) -> ToolSpec:
        """Describe the tool to a model: the JSON Schema of its argument Struct (inlined), or its `parameters`."""
        if self.args is None:
            return ToolSpec(name=self.name, description=self.description, parameters=self.parameters or _NO_PARAMETERS)
        schema = msgspec.json.schema(self.args)
        definitions = schema.get("$defs", {})
        ref = schema.get("$ref", "")
        parameters = definitions.get(ref.rsplit("/", 1)[-1], schema) if ref else schema
        parameters = {key: value for key, value in parameters.items() if key != "title"}
        return ToolSpec(name=self.name, description=self.description, parameters=parameters)

    def parse(self, arguments: str) -> Any:
        """Decode the model's JSON arguments into the argument Struct, or raise `InvalidArguments`."""
        try:
            return msgspec.json.decode(arguments or "{}", type=self.args or dict[str, Any])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidArguments(self.name, str(exc)) from None

    async def call(self, arguments: str, context: ToolContext) -> str:
        """Parse `arguments` and run the tool; raise `ToolError` on bad arguments or a failure."""
        if self.run is None:
            raise ToolError(f"{self.name} is answered by the turn, not run")
        return await self.run(self.parse(arguments), context)


_NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


class ToolRegistry:
    """Tools by name."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        """Add `tool`; a second tool of the same name is a programming error."""
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is registered twice")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def select(self, names: Iterable[str]) -> list[Tool]:
        """The tools named (all of them for `*`), in the order given; unknown names are skipped."""
        wanted = list(names)
        if "*" in wanted:
            return list(self._tools.values())
        return [self._tools[name] for name in wanted if name in self._tools]
