"""The WebSocket protocol: what clients send, and the frames the server sends back.

Frame names and shapes follow the seed's chat socket (`token`, `step`,
`final_answer`, `error` with `data.message`, ...). A frame that renders a
persisted event carries a top-level `position`; frames of live chunks carry none.
"""

from __future__ import annotations

import msgspec

from schemas import ExecutionMode
from schemas.quotas import QuotaInfo


class ClientFrame(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of client → server frames."""


class MessageFrame(ClientFrame, frozen=True, kw_only=True, tag="message"):
    """A chat message the client sends (wire tag `message`); not the LLM's `ChatMessage`."""

    content: str
    model: str | None = None
    execution_mode: ExecutionMode | None = None
    idempotency_key: str | None = None


class CancelFrame(ClientFrame, frozen=True, kw_only=True, tag="cancel"):
    turn_id: str | None = None


class Ping(ClientFrame, frozen=True, kw_only=True, tag="ping"):
    pass


class ReplyFrame(ClientFrame, frozen=True, kw_only=True, tag="reply"):
    request_id: str
    content: str


class ConfirmationReplyFrame(ClientFrame, frozen=True, kw_only=True, tag="confirmation_reply"):
    confirmation_id: str
    approved: bool


ClientFrames = MessageFrame | CancelFrame | Ping | ReplyFrame | ConfirmationReplyFrame
client_frames = msgspec.json.Decoder(ClientFrames)


class ServerFrame(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A server → client frame; `data` holds pre-encoded JSON."""

    type: str
    position: int | None = None
    session_id: str | None = None
    content: str | None = None
    is_final: bool | None = None
    turn_id: str | None = None
    question: str | None = None
    """`ask_human` only: the question, at the top level as the seed sent it (also in `data`)."""
    request_id: str | None = None
    """`ask_human` only: the id a `reply` answers, at the top level as the seed sent it (also in `data`)."""
    data: msgspec.Raw | None = None


class ErrorData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    message: str
    code: str | None = None
    quota_info: QuotaInfo | None = None
    """`quota exceeded` only: which quota, as the seed's frame told it."""


class TeamEndedData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The `error` frame of a team that was cancelled or failed: the seed's message, plus the team's end."""

    message: str
    code: str
    team_id: str
    status: str
    reason: str
    quota_info: QuotaInfo | None = None
    """A team ended by a model call over quota: the seed's `quota exceeded` frame names the quota."""


class ResultData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The `result` frame of a cancel (the seed's `{"status": "cancelled"}`): a turn's, a board's, or of nothing."""

    status: str
    turn_id: str | None = None
    board_id: str | None = None


class StepData(msgspec.Struct, frozen=True, kw_only=True):
    event_type: str
    step: int
    data: msgspec.Raw


_encoder = msgspec.json.Encoder()


def encode_frame(frame: ServerFrame) -> str:
    return _encoder.encode(frame).decode()


def raw(value: object) -> msgspec.Raw:
    return msgspec.Raw(_encoder.encode(value))


def error_frame(message: str, code: str | None = None, position: int | None = None) -> ServerFrame:
    return ServerFrame(type="error", position=position, data=raw(ErrorData(message=message, code=code)))
