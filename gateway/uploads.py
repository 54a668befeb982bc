"""Uploads: `POST /upload` streams a multipart `file` into the uploads bucket; `GET /uploads/{name}` serves it.

The body is parsed as it arrives (python-multipart's streaming parser) and the
10 MB limit is checked on every chunk, so an upload that crosses it is
answered 413 at once, without reading the rest, and nothing of it is stored:
the file is spooled (in memory up to 1 MiB, then in a temporary file) and put
into the JetStream Object Store only once it is complete. Every gateway and
worker reads that store, so an upload made through one gateway is served by
any other and read by the agents' tools.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import msgspec
import structlog
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from bus import MAX_UPLOAD_BYTES, BusError, ObjectBucket, is_upload_name, new_upload_name, uploads
from schemas import limits

from .answers import json_response, problem
from .context import GatewayContext

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

logger = structlog.get_logger("agentbus.gateway")

DOWNLOAD_PREFIX = "/api/v1/chat/uploads/"
FORM_OVERHEAD_BYTES = 64 * 1024
"""What a body may hold besides the file: boundaries, part headers, small fields."""
UPLOAD_TIMEOUT = 300.0
"""Seconds the whole body may take to arrive (a client that stalls does not hold a spool for ever)."""
_SPOOL_IN_MEMORY = 1024 * 1024
_FIELD = "file"
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
_OCTET_STREAM = "application/octet-stream"
_MAX_FILENAME = 255


class Upload(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to an upload, as the seed gave it."""

    filename: str
    stored_name: str
    content_type: str
    size: int
    download_url: str


def _content_type(value: str) -> str:
    """`type/subtype` of the client's content type (parameters dropped), or application/octet-stream."""
    media = value.split(";", 1)[0].strip().lower()
    return media if _CONTENT_TYPE.fullmatch(media) else _OCTET_STREAM


def _filename(value: str) -> str:
    """The client's file name as a label: its last path segment, printable, at most 255 characters."""
    name = value.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in name if c.isprintable())[:_MAX_FILENAME] or "unnamed"


class _FileField:
    """The multipart parser's callbacks: the first `file` part goes to `spool`, other parts are only counted."""

    def __init__(self, spool: tempfile.SpooledTemporaryFile[bytes]) -> None:
        self.spool = spool
        self.found = False
        self.size = 0
        self.filename = ""
        self.content_type = ""
        self.ended = False
        self._in_file = False
        self._headers: dict[str, bytes] = {}
        self._field = self._value = b""

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    @property
    def too_large(self) -> bool:
        return self.size > MAX_UPLOAD_BYTES

    def _part_begin(self) -> None:
        self._headers, self._field, self._value = {}, b"", b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        # Kept as bytes: a part's header may carry any bytes, and the options parser takes bytes whatever they are.
        self._headers[self._field.decode("latin-1").lower()] = self._value
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", b""))
        self._in_file = not self.found and options.get(b"name") == _FIELD.encode()
        if self._in_file:
            self.found = True
            self.filename = _filename(options.get(b"filename", b"").decode("utf-8", "replace"))
            self.content_type = _content_type(self._headers.get("content-type", b"").decode("utf-8", "replace"))

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_file or self.too_large:
            return
        self.size += end - start
        if not self.too_large:  # past the limit nothing more is kept: the upload is refused
            self.spool.write(data[start:end])

    def _part_end(self) -> None:
        self._in_file = False

    def _end(self) -> None:
        self.ended = True


def _too_large() -> Response:
    return problem(413, f"File exceeds {MAX_UPLOAD_BYTES // (1024 * 1024)} MB limit", limits.TOO_LARGE)


async def _receive(request: Request, field: _FileField, boundary: bytes) -> Response | None:
    """Parse the body into `field` as it arrives; the error to answer, or None once the file is complete."""
    parser = MultipartParser(boundary, field.callbacks())
    body_limit = MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES
    received = 0
    try:
        async with asyncio.timeout(UPLOAD_TIMEOUT):
            async for chunk in request.stream():
                received += len(chunk)
                parser.write(chunk)
                if field.too_large or received > body_limit:
                    return _too_large()
        parser.finalize()
    except TimeoutError:
        return problem(408, f"the upload did not arrive within {UPLOAD_TIMEOUT:.0f} s", "upload_timeout")
    except FormParserError as exc:
        return problem(400, f"malformed multipart body: {exc}", "invalid_body")
    except ClientDisconnect:
        return problem(400, "the client went away before the upload was complete", "client_disconnected")
    if not field.ended:
        return problem(400, "the multipart body ended before its final boundary", "invalid_body")
    if not field.found:
        return problem(422, f"the form has no {_FIELD!r} field", "missing_file")
    return None


async def upload(request: Request) -> Response:
    """Store the form's `file` under a fresh name; answer its filename, stored_name, content_type, size, download_url."""
    ctx: GatewayContext = request.app.state.ctx
    media, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if media != b"multipart/form-data" or not boundary:
        return problem(415, "send the file as multipart/form-data, in a field named 'file'", "unsupported_media_type")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES:
        return _too_large()
    if not ctx.bus.connected:
        return problem(503, "NATS is not connected", "bus_unavailable")
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
        field = _FileField(spool)
        refusal = await _receive(request, field, boundary)
        if refusal is not None:
            return refusal
        spool.seek(0)
        stored_name = new_upload_name(field.filename)
        try:
            stored = await uploads(ctx.bus).put(
                stored_name, spool, content_type=field.content_type, filename=field.filename
            )
        except BusError as exc:
            return problem(503, str(exc), "bus_unavailable")
    logger.info("upload_stored", stored_name=stored_name, size=stored.size, content_type=stored.content_type)
    return json_response(
        Upload(
            filename=field.filename,
            stored_name=stored_name,
            content_type=stored.content_type,
            size=stored.size,
            download_url=DOWNLOAD_PREFIX + stored_name,
        )
    )


async def _streamed(bucket: ObjectBucket, name: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in bucket.chunks(name):
            yield chunk
    except BusError as exc:
        # The headers are sent: cutting the connection is how the client learns the file is incomplete.
        logger.warning("upload_read_failed", stored_name=name, error=str(exc))
        raise


async def download(request: Request) -> Response:
    """Serve an upload as an attachment named after its stored name; any other name is a 404."""
    ctx: GatewayContext = request.app.state.ctx
    name = request.path_params["name"]
    not_found = problem(404, "File not found", "unknown_upload")
    if not is_upload_name(name):
        return not_found  # `..`, slashes (also encoded), absolute paths and NUL never reach the store
    bucket = uploads(ctx.bus)
    try:
        stored = await bucket.info(name)
    except BusError as exc:
        return problem(503, str(exc), "bus_unavailable")
    if stored is None:
        return not_found
    headers = {
        "content-type": stored.content_type,
        "content-length": str(stored.size),
        "content-disposition": f'attachment; filename="{name}"',
        "x-content-type-options": "nosniff",
    }
    return StreamingResponse(_streamed(bucket, name), headers=headers)
