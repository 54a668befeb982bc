"""The upload tools: `read_upload` (text, bounded; binary described) and `delete_upload` (needs confirmation).

Uploads live in the JetStream Object Store (`bus.uploads`), the store every
gateway writes and every worker reads, so these tools see what was uploaded
through any gateway, whatever the worker's working or data directory. Only
stored upload names are looked up (`bus.is_upload_name`): a path, or the name
of anything else, is refused before the store is asked.
"""

from __future__ import annotations

import codecs

import msgspec

from bus import BusError, is_upload_name, uploads

from .base import ToolContext, ToolError

MAX_READ_BYTES = 16 * 1024
"""The most `read_upload` returns at once: a tool result is recorded as an event and goes into the next prompt."""
DEFAULT_READ_BYTES = 4096


class ReadUploadArgs(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    filename: str
    """The upload's stored name (`stored_name`), or its download URL."""
    max_bytes: int = DEFAULT_READ_BYTES
    """How many bytes to read from its start (1 to 16384; other numbers are brought into that range).

    Not a schema bound: a model that asks for more gets the most there is, not an error to retry on."""


class DeleteUploadArgs(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    filename: str
    """The upload's stored name (`stored_name`), or its download URL."""


def _upload_name(given: str) -> str:
    name = given.strip().rsplit("/uploads/", 1)[-1]  # a download URL names the upload too
    if not is_upload_name(name):
        raise ToolError(f"{given.strip()!r} is not an upload's stored name (32 hex digits and an extension)")
    return name


def _text(data: bytes, complete: bool) -> str | None:
    """`data` as UTF-8 text (a character cut at the end is left out unless `complete`), or None if it is binary."""
    if b"\x00" in data:
        return None
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(data, final=complete)
    except UnicodeDecodeError:
        return None


async def read_upload(args: ReadUploadArgs, context: ToolContext) -> str:
    name = _upload_name(args.filename)
    bucket = uploads(context.bus)
    try:
        stored = await bucket.info(name)
        data = b"" if stored is None else await bucket.read(name, min(max(args.max_bytes, 1), MAX_READ_BYTES))
    except BusError as exc:
        raise ToolError(f"the upload store is unavailable: {exc}") from None
    if stored is None:
        return f"There is no upload named {name}."
    about = f"{name} ({stored.content_type}, {stored.size} bytes, uploaded as {stored.filename!r})"
    text = _text(data, complete=len(data) >= stored.size)
    if text is None:
        return f"{about} is a binary file; it cannot be shown as text."
    if len(data) < stored.size:
        return f"{about}, its first {len(text.encode())} bytes:\n{text}"
    return f"{about}:\n{text}"


async def delete_upload(args: DeleteUploadArgs, context: ToolContext) -> str:
    name = _upload_name(args.filename)
    try:
        deleted = await uploads(context.bus).delete(name)
    except BusError as exc:
        raise ToolError(f"the upload store is unavailable: {exc}") from None
    if not deleted:
        return f"There is no upload named {name}; nothing was deleted."
    return f"Deleted the upload {name}."
