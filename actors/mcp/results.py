"""An MCP tool result as the text the model reads: text as is, everything else described, bounded in size."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


def result_text(content: list[Any], structured: dict[str, Any] | None, limit: int) -> str:
    """The content blocks of a `CallToolResult` as one text of at most `limit` UTF-8 bytes.

    Images, audio and binary resources are described (their type and size),
    never inlined: a model reads text, and the result is recorded as an event.
    A result with no content shows its structured content as JSON.
    """
    parts = [_describe(block) for block in content]
    if not parts and structured is not None:
        parts = [json.dumps(structured, ensure_ascii=False)]
    return bounded("\n".join(parts), limit)


def bounded(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes on a character boundary, saying how much was left out."""
    data = text.encode()
    if len(data) <= limit:
        return text
    note = f"\n[cut: {len(data)} bytes in all, the first {{kept}} shown]"
    room = max(limit - len(note.format(kept=limit).encode()), 0)
    kept = data[:room].decode(errors="ignore")
    return kept + note.format(kept=len(kept.encode()))


def _describe(block: Any) -> str:
    match getattr(block, "type", None):
        case "text":
            return str(block.text)
        case "image" | "audio":
            return f"[{block.type}: {block.mime_type}, {_decoded_size(block.data)} bytes, not shown]"
        case "resource_link":
            about = ", ".join(str(part) for part in (block.name, block.mime_type) if part)
            return f"[resource link: {block.uri}{f' ({about})' if about else ''}]"
        case "resource":
            resource = block.resource
            text = getattr(resource, "text", None)
            if text is not None:
                return f"[resource {resource.uri}]\n{text}"
            mime = resource.mime_type or "binary"
            return f"[resource {resource.uri}: {mime}, {_decoded_size(resource.blob)} bytes, not shown]"
    return f"[{getattr(block, 'type', type(block).__name__)} content, not shown]"


def _decoded_size(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return len(data)
