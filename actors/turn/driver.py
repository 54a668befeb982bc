"""The ReAct driver of one agent turn: the I/O between the turn's pure decisions.

It loops on `logic.next_action`: calls the model through the fallback
chain (publishing tokens as frames), runs tools, waits for the user, and
hands every outcome to its actor as a `Propose`, so only the actor writes
the turn's stream. It runs in a task the actor owns; cancelling that task
stops a streaming model call at once (within one chunk).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec
import structlog

from schemas import Principal, Token, TokenReset
from schemas.events import AnyEvent, ToolStarted, TurnFailed

from ..context import WorkerContext
from ..errors import is_outage
from ..llm import LLMMessage, LLMRequest, ToolCall
from ..llm.fallback import generate
from ..llm.registry import tiers
from ..quota import QUOTA_EXCEEDED, Admitted, QuotaUnavailable
from ..tools import BUILTIN_TOOLS, ToolContext, ToolError, ToolRegistry
from .logic import CallModel, Done, Record, RunTool, Wait, decide_output, next_action, tool_result
from .phases import PhasePolicy
from .prompt import conversation
from .setup import TurnSetup
from .state import TurnState

logger = structlog.get_logger("agentbus.turn")

TOOL_TIMEOUT = 30.0
Proposer = Callable[[list[AnyEvent], int], Awaitable[bool]]
"""Hand events decided at a state version to the actor; True once recorded."""


def _new_segment() -> str:
    return uuid.uuid4().hex[:12]


def utcnow() -> datetime:
    return datetime.now(UTC)


class ReactDriver:
    """Drives one turn from whatever its state says, to its outcome."""

    def __init__(
        self,
        *,
        turn_id: str,
        session_id: str,
        ctx: WorkerContext,
        setup: TurnSetup,
        history_of: Callable[[], list[LLMMessage]],
        state_of: Callable[[], TurnState],
        propose: Proposer,
        changed: asyncio.Event,
        relayed: Callable[[], Awaitable[object]],
        principal: Principal | None = None,
    ) -> None:
        self.turn_id = turn_id
        self.session_id = session_id
        self.ctx = ctx
        self.setup = setup
        self.tools = ToolRegistry(BUILTIN_TOOLS.select(setup.tools))
        self.phases = PhasePolicy(ctx.config.plan_exec)
        self._history_of = history_of
        self._state_of = state_of
        self._propose = propose
        self._changed = changed
        self._relayed = relayed
        self.principal = principal
        """Whose quotas the turn's model calls count against (None: nobody's)."""

    async def run(self) -> None:
        """Loop until the turn has its outcome; an unexpected error ends the turn as failed.

        An outage (the database or NATS gone) only stops the driver: the turn
        resumes from its last recorded step when its work is asserted again.
        """
        try:
            await self._loop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_outage(exc):
                logger.warning("turn_interrupted", error=str(exc))
                return
            # A bug: the turn must end with an answer the user sees, not hang.
            logger.exception("turn_driver_crashed")
            state = self._state_of()
            if state.outcome is None:
                failed = TurnFailed(
                    turn_id=self.turn_id, message=f"internal error: {type(exc).__name__}", code="internal_error"
                )
                await self._propose([failed], state.version)

    async def _loop(self) -> None:
        await self._offer_mcp_tools()
        while True:
            self._changed.clear()
            state = self._state_of()
            action = next_action(state, self.setup, self.tools, self.phases, self.turn_id, utcnow())
            match action:
                case Done():
                    return
                case Record(events=events):
                    await self._propose(events, state.version)
                case CallModel(step=step):
                    await self._call_model(step)
                case RunTool(step=step, call=call, started=started):
                    # The effect ledger: the run is recorded before it starts, so a stop during it is seen.
                    if not await self._propose([started], state.version):
                        continue  # the state moved on (a cancel): decide again
                    content, is_error = await self._run_tool(call, started)
                    await self._record_result(step, call, content, is_error)
                case Wait(until=until):
                    remaining = (until - utcnow()).total_seconds()
                    try:
                        await asyncio.wait_for(self._changed.wait(), max(remaining, 0.0))
                    except TimeoutError:
                        pass  # the next decision records the timeout

    async def _offer_mcp_tools(self) -> None:
        """Add the tools of the turn's MCP servers to the built-in ones: known only now, as servers start lazily."""
        tools = await self.ctx.mcp.tools(self.ctx.config.mcp, self.setup.mcp)
        for tool in tools:
            self.tools.register(tool)
        self.setup = msgspec.structs.replace(self.setup, tools=[*self.setup.tools, *(tool.name for tool in tools)])

    async def _call_model(self, step: int) -> None:
        state = self._state_of()
        limit = self.ctx.config.limits.chat
        system, messages = conversation(state, self.setup, self._history_of(), self.phases, limit.prompt_tokens)
        tools = self.tools.select(self.setup.tools)
        request = LLMRequest(
            model="",
            messages=messages,
            system_prompt=system,
            tools=[tool.spec() for tool in tools],
            # A forced tool is forced once: the next call answers from its result.
            tool_choice=self.setup.tool_choice if step == 1 else None,
            max_tokens=limit.max_tokens,
        )
        admitted = await self._admit(request)
        if admitted is None:
            return
        chain = tiers(self.ctx.config, self.ctx.providers, self.setup.llm, self.setup.fallback, self.setup.model)
        # Tokens must not overtake the events recorded before them on the client's socket.
        await self._relayed()
        feed = self.ctx.bus.subjects.session_evt(self.session_id)
        segment = _new_segment()
        streamed = False

        async def publish(text: str) -> None:
            nonlocal streamed
            streamed = True
            await self.ctx.bus.publish(feed, Token(turn_id=self.turn_id, content=text, segment=segment))

        async def reset() -> None:
            # The client discards what this attempt streamed; the next one streams under a new segment.
            nonlocal segment, streamed
            await self.ctx.bus.publish(feed, TokenReset(turn_id=self.turn_id, segment=segment))
            segment, streamed = _new_segment(), False

        output = await generate(chain, request, publish, on_reset=reset, timeout=limit.timeout)
        await self.ctx.quotas.settle(admitted, output.prompt_tokens + output.completion_tokens)
        if output.calls and streamed:
            await reset()  # the text streamed before a tool call is recorded as thinking instead
        state = self._state_of()
        events = decide_output(state, self.setup, step, output, self.turn_id, admitted.charged_to)
        await self._propose(events, state.version)

    async def _admit(self, request: LLMRequest) -> Admitted | None:
        """Reserve the call's share of the caller's quotas; None when it must not be made (the turn then fails).

        Over quota, the turn ends as the seed's `quota exceeded`; a quota store
        that does not answer refuses the call too (fail closed).
        """
        try:
            admitted = await self.ctx.quotas.admit(self.principal, request)
        except QuotaUnavailable as exc:
            logger.warning("quota_unavailable", error=str(exc))
            message = f"the quota store did not answer ({exc.reason}); the model was not called"
            failed = TurnFailed(turn_id=self.turn_id, message=message, code="quota_unavailable")
        else:
            if isinstance(admitted, Admitted):
                return admitted
            failed = TurnFailed(
                turn_id=self.turn_id, message=QUOTA_EXCEEDED, code="quota_exceeded", quota_info=admitted
            )
        state = self._state_of()
        await self._propose([failed], state.version)
        return None

    async def _record_result(self, step: int, call: ToolCall, content: str, is_error: bool) -> None:
        """Record a run's outcome, deciding again if the state moved on meanwhile: a lost result would be
        an unknown outcome, and for a tool that is not idempotent a question to the user."""
        while True:
            state = self._state_of()
            events = tool_result(state, step, call, content, is_error, self.turn_id)
            if not events or await self._propose(events, state.version):
                return

    async def _run_tool(self, call: ToolCall, started: ToolStarted) -> tuple[str, bool]:
        tool = self.tools.get(call.name)
        if tool is None:
            return f"unknown tool {call.name!r}", True
        context = ToolContext(bus=self.ctx.bus, effect_key=started.effect_key, attempt=started.attempt)
        try:
            async with asyncio.timeout(TOOL_TIMEOUT):
                return await tool.call(call.arguments, context), False
        except ToolError as exc:
            return str(exc), True
        except TimeoutError:
            return f"{call.name} took longer than {TOOL_TIMEOUT:.0f} s", True
        except Exception as exc:  # a broken tool is reported to the model, the turn goes on
            logger.exception("tool_crashed", tool=call.name)
            return f"{call.name} failed: {type(exc).__name__}", True
