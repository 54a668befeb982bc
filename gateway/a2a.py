"""Every configured agent as an Agent2Agent agent: its card, and messages sent (streamed) into a session.

`GET /a2a/<agent>/.well-known/agent-card.json` is the agent's card and
`POST /a2a/<agent>` its JSON-RPC endpoint (the official SDK's dispatcher and
request handler). An A2A context is one agentbus session of that agent
(created on its first message, under an id derived from the context), so a
conversation goes on where it left off, on any gateway. Each message is sent
through the gateway's REST API in-process (`gateway.inprocess`), so it is
authorized and answered as REST answers it, with the caller's credential; the
answer's tokens stream as updates of the task's `answer` artifact.

Tasks live in the memory of the gateway that ran them (the SDK's in-memory
store): `tasks/get` and resubscribing find a task on that gateway only; the
conversation itself is in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from a2a.helpers.proto_helpers import new_task
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue_v2 import EventQueue
from a2a.server.request_handlers import DefaultRequestHandlerV2
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes import DefaultServerCallContextBuilder
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, Part, TaskState
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from bus import TypedSubscription, publish_command
from schemas import Cancel, FeedItem, RecordedEvent, Token, TokenReset, codec
from schemas.events import UserMessage

from .answers import Problem, problem
from .context import GatewayContext
from .inprocess import RestRefused, call_rest, credentials_of
from .jsonrpc import JSON_RPC_ANSWER, JsonRpcMessage
from .openapi import ApiRoute, Content

_SESSIONS = uuid.UUID("5d3b4a1e-0c7f-4a8e-9a61-2f0e7c1d9b42")
"""The namespace of the session ids derived from A2A contexts."""


def session_of(agent: str, context_id: str) -> str:
    """The agentbus session of an A2A context with `agent` (the same on every gateway)."""
    return uuid.uuid5(_SESSIONS, f"{agent}/{context_id}").hex


class A2aAgents:
    """The A2A side of the gateway: a card and a dispatcher per agent, made on first use."""

    def __init__(self, ctx: GatewayContext) -> None:
        self._ctx = ctx
        self._app: ASGIApp | None = None
        self._dispatchers: dict[str, JsonRpcDispatcher] = {}

    def bind(self, app: ASGIApp) -> None:
        """Send the agents' messages through `app`'s REST API."""
        self._app = app

    @property
    def routes(self) -> list[ApiRoute]:
        answer = Content("application/json", schema=JSON_RPC_ANSWER)
        return [
            ApiRoute(
                "/a2a/{agent}/.well-known/agent-card.json",
                self.card,
                "GET",
                summary="An agent's Agent2Agent card",
                responses={200: Content("application/json", schema={"type": "object"}), 401: Problem, 404: Problem},
            ),
            ApiRoute(
                "/a2a/{agent}",
                self.rpc,
                "POST",
                summary="Agent2Agent JSON-RPC: send a message (streamed with message/stream), get or cancel a task",
                body=JsonRpcMessage,
                responses={200: answer, 401: Problem, 404: Problem},
            ),
        ]

    async def card(self, request: Request) -> Response:
        described = await self._describe(request)
        if isinstance(described, Response):
            return described
        return JSONResponse(agent_card_to_dict(_card(described, str(request.base_url).rstrip("/"))))

    async def rpc(self, request: Request) -> Response:
        described = await self._describe(request)
        if isinstance(described, Response):
            return described
        name = described["name"]
        if name not in self._dispatchers:
            assert self._app is not None
            handler = DefaultRequestHandlerV2(
                agent_executor=SessionExecutor(self._ctx, self._app, name),
                task_store=InMemoryTaskStore(),
                agent_card=_card(described, ""),
            )
            self._dispatchers[name] = JsonRpcDispatcher(handler, context_builder=DefaultServerCallContextBuilder())
        return await self._dispatchers[name].handle_requests(request)

    async def _describe(self, request: Request) -> dict[str, Any] | Response:
        """The agent the path names, as `GET /agents` describes it to this caller, or the 404 to answer."""
        if self._app is None:
            return problem(503, "the gateway is not serving yet", "service_unavailable")
        name = request.path_params["agent"]
        try:
            agents = await call_rest(self._app, "GET", "/agents", headers=credentials_of(request.headers))
        except RestRefused as exc:
            return problem(exc.status, exc.detail, exc.code)
        found = next((agent for agent in agents if agent["name"] == name), None)
        if found is None:
            return problem(404, f"agent {name!r} not found", "unknown_agent")
        return dict(found)


def _card(agent: dict[str, Any], base_url: str) -> AgentCard:
    skills = [
        AgentSkill(id=skill["name"], name=skill["name"], description=skill.get("description") or skill["name"])
        for skill in agent.get("skills", [])
    ]
    return AgentCard(
        name=agent["name"],
        description=agent.get("description") or f"the agentbus agent {agent['name']}",
        version="1",
        supported_interfaces=[
            AgentInterface(url=f"{base_url}/a2a/{agent['name']}", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=skills
        or [AgentSkill(id="chat", name="chat", description=agent.get("description") or "chat", tags=["chat"])],
    )


class SessionExecutor(AgentExecutor):
    """Runs an A2A message as a message to the agent's session; its tokens stream as artifact updates."""

    def __init__(self, ctx: GatewayContext, app: ASGIApp, agent: str) -> None:
        self._ctx = ctx
        self._app = app
        self._agent = agent

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None and context.message is not None
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        if context.current_task is None:
            submitted = TaskState.TASK_STATE_SUBMITTED
            await event_queue.enqueue_event(
                new_task(context.task_id, context.context_id, submitted, history=[context.message])
            )
        await updater.start_work()
        headers = credentials_of(_headers(context.call_context))
        session_id = session_of(self._agent, context.context_id)
        # The message's id is its idempotency key: a retried send is answered once.
        key = context.message.message_id or uuid.uuid4().hex
        try:
            # Idempotent: the context's session is made on its first message and found on the next ones.
            create = {"agent_name": self._agent, "session_id": session_id}
            await call_rest(self._app, "POST", "/sessions", headers=headers, body=create)
            live = await self._ctx.bus.subscribe(self._ctx.bus.subjects.session_evt(session_id), codec.feed)
            stream = _AnswerStream(updater, key)
            follower = asyncio.create_task(stream.follow(live))
            try:
                body = {"content": context.get_user_input(), "idempotency_key": key}
                reply = await call_rest(
                    self._app, "POST", f"/sessions/{session_id}/messages", headers=headers, body=body
                )
            finally:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
                await live.close()
        except RestRefused as exc:
            await updater.failed(updater.new_agent_message([Part(text=str(exc))]))
            return
        await stream.finish(reply["content"])
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        await publish_command(self._ctx.bus, session_of(self._agent, context.context_id), Cancel())
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def _headers(call: ServerCallContext | None) -> dict[str, str]:
    return dict(call.state.get("headers", {})) if call is not None else {}


class _AnswerStream:
    """The `answer` artifact of a task, fed by the tokens of the turn answering the message sent with `key`."""

    def __init__(self, updater: TaskUpdater, key: str) -> None:
        self._updater = updater
        self._key = key
        self._turn_id: str | None = None
        self._segments: dict[str, str] = {}
        self._artifact_id = uuid.uuid4().hex

    async def follow(self, live: TypedSubscription[FeedItem]) -> None:
        async for item in live:
            match item:
                case RecordedEvent(event=UserMessage(idempotency_key=key, message_id=message_id)) if key == self._key:
                    self._turn_id = message_id
                case Token(turn_id=turn_id, segment=segment, content=content) if turn_id == self._turn_id:
                    # The first chunk creates the artifact; the next ones append to it.
                    created = bool(self._segments)
                    self._segments[segment] = self._segments.get(segment, "") + content
                    await self._send(content, append=created)
                case TokenReset(turn_id=turn_id, segment=segment) if turn_id == self._turn_id:
                    # That attempt's tokens are void: the artifact is replaced by what the others streamed.
                    self._segments.pop(segment, None)
                    await self._send("".join(self._segments.values()), append=False)

    async def finish(self, answer: str) -> None:
        """The recorded answer replaces what streamed, as the artifact's last chunk."""
        await self._updater.add_artifact(
            [Part(text=answer)], artifact_id=self._artifact_id, name="answer", append=False, last_chunk=True
        )

    async def _send(self, text: str, *, append: bool) -> None:
        await self._updater.add_artifact(
            [Part(text=text)], artifact_id=self._artifact_id, name="answer", append=append, last_chunk=False
        )
