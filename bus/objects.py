"""Files every gateway and worker reads: JetStream Object Store buckets, and the chat uploads kept in one.

An object is stored in chunks (nats-py's `put`, 128 KiB each) on the bucket's
stream; reading pulls the chunks one request at a time (`next_by_subj`), so a
reader that stops early (a tool that wants the first kilobytes, an HTTP client
that goes away) fetches no more than it used, and a slow one holds nothing in
the client's buffers.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import secrets
from collections.abc import AsyncGenerator
from typing import IO, cast

import msgspec
import nats.errors
import nats.js.errors
from nats.js.api import ObjectInfo, ObjectMeta, ObjectStoreConfig, StorageType
from nats.js.object_store import OBJ_CHUNKS_PRE_TEMPLATE, OBJ_STREAM_TEMPLATE, ObjectStore

from schemas import Subjects

from .connection import Bus
from .errors import BusError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
"""The largest upload (10 MB, as the seed had it); the gateway refuses more while it is still streaming in."""

UPLOAD_NAME = re.compile(r"[0-9a-f]{32}(?:\.[A-Za-z0-9]{1,10})?")
"""A stored upload's name: 32 random hex digits and the original extension, if it was a plain one."""

_EXTENSION = re.compile(r"[A-Za-z0-9]{1,10}")
_OCTET_STREAM = "application/octet-stream"
_CONTENT_TYPE_HEADER = "Content-Type"
_FILENAME_HEADER = "Agentbus-Filename"
_NATS_ERRORS = (TimeoutError, nats.errors.Error)


class ObjectStoreFailed(BusError):
    """The object store could not do what it was asked (JetStream down or refusing, a corrupt object)."""

    def __init__(self, bucket: str, reason: str) -> None:
        super().__init__(f"object store {bucket}: {reason}")
        self.bucket = bucket
        self.reason = reason


class StoredObject(msgspec.Struct, frozen=True, kw_only=True):
    """What the store knows of one object besides its bytes."""

    name: str
    size: int
    content_type: str = _OCTET_STREAM
    filename: str = ""
    """The name it was uploaded under (the client's, not a path anyone resolves)."""


def _failed(bucket: str, exc: BaseException) -> ObjectStoreFailed:
    return ObjectStoreFailed(bucket, str(exc) or type(exc).__name__)


def _stored(info: ObjectInfo) -> StoredObject:
    headers = info.headers or {}

    def header(key: str) -> str:
        value = headers.get(key) or ""
        return str(value[0] if isinstance(value, list) and value else value)  # Go's nats.Header is a list per key

    return StoredObject(
        name=info.name,
        size=info.size or 0,
        content_type=header(_CONTENT_TYPE_HEADER) or _OCTET_STREAM,
        filename=header(_FILENAME_HEADER),
    )


def _digest_matches(recorded: str | None, actual: bytes) -> bool:
    """Whether an object's recorded digest (`SHA-256=<url-safe base64>`) is the SHA-256 of what was read."""
    encoded = (recorded or "").partition("=")[2]
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)) == actual
    except ValueError:
        return False


class ObjectBucket:
    """One Object Store bucket, created on first use (by whichever gateway or worker comes first)."""

    def __init__(self, bus: Bus, name: str) -> None:
        self.bus = bus
        self.name = name
        self._store: ObjectStore | None = None

    async def _bound(self) -> ObjectStore:
        if self._store is not None:
            return self._store
        js = self.bus.nc.jetstream()
        try:
            try:
                self._store = await js.object_store(self.name)
            except nats.js.errors.BucketNotFoundError:
                # Two creators with the same configuration both succeed: JetStream's stream create is idempotent.
                config = ObjectStoreConfig(description="agentbus uploads", storage=StorageType.FILE)
                self._store = await js.create_object_store(self.name, config)
        except _NATS_ERRORS as exc:
            raise _failed(self.name, exc) from None
        return self._store

    async def put(self, name: str, source: IO[bytes], *, content_type: str, filename: str) -> StoredObject:
        """Store what `source` holds, from where it stands, under `name` (replacing an object of that name).

        nats-py reads `source` with `readinto` in a thread, one chunk at a time.
        """
        store = await self._bound()
        headers = {_CONTENT_TYPE_HEADER: [content_type], _FILENAME_HEADER: [filename]}
        try:
            reader = cast(io.BufferedIOBase, source)  # nats-py needs only `readinto`, which every binary file has
            info = await store.put(name, reader, meta=ObjectMeta(name=name, headers=headers))
        except _NATS_ERRORS as exc:
            raise _failed(self.name, exc) from None
        return _stored(info)

    async def _info(self, name: str) -> ObjectInfo | None:
        store = await self._bound()
        try:
            return await store.get_info(name)
        except nats.js.errors.NotFoundError:
            return None  # never stored, or deleted
        except _NATS_ERRORS as exc:
            raise _failed(self.name, exc) from None

    async def info(self, name: str) -> StoredObject | None:
        """The object called `name`, or None if there is none (never stored, or deleted)."""
        info = await self._info(name)
        return None if info is None else _stored(info)

    async def chunks(self, name: str) -> AsyncGenerator[bytes, None]:
        """Yield the object's bytes chunk by chunk (nothing if it does not exist); check its digest at the end.

        Each chunk is one JetStream request, bounded by the connection's API timeout.
        """
        info = await self._info(name)
        if info is None or not info.size:
            return
        js = self.bus.nc.jetstream()
        stream = OBJ_STREAM_TEMPLATE.format(bucket=self.name)
        subject = OBJ_CHUNKS_PRE_TEMPLATE.format(bucket=self.name, obj=info.nuid)
        digest = hashlib.sha256()
        seq, received = 1, 0
        while received < info.size:
            try:
                msg = await js.get_msg(stream, seq=seq, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                raise ObjectStoreFailed(self.name, f"{name} was deleted while it was read") from None
            except _NATS_ERRORS as exc:
                raise _failed(self.name, exc) from None
            data = msg.data or b""
            digest.update(data)
            received += len(data)
            seq = (msg.seq or seq) + 1
            yield data
        if received != info.size or not _digest_matches(info.digest, digest.digest()):
            raise ObjectStoreFailed(self.name, f"{name} is corrupt: its bytes do not match its digest")

    async def read(self, name: str, limit: int) -> bytes:
        """The object's first `limit` bytes at most, fetching only the chunks that hold them."""
        data = bytearray()
        reader = self.chunks(name)
        try:
            async for chunk in reader:
                data += chunk
                if len(data) >= limit:
                    break
        finally:
            await reader.aclose()
        return bytes(data[:limit])

    async def delete(self, name: str) -> bool:
        """Delete the object called `name`; False if there was none."""
        store = await self._bound()
        try:
            await store.delete(name)
        except nats.js.errors.NotFoundError:
            return False
        except _NATS_ERRORS as exc:
            raise _failed(self.name, exc) from None
        return True


def uploads_bucket_name(subjects: Subjects) -> str:
    """The uploads bucket of a subject prefix (`agentbus_uploads`), so each tenant has its own."""
    return subjects.prefix.replace(".", "_") + "_uploads"


def uploads(bus: Bus) -> ObjectBucket:
    """The bucket chat uploads live in, for the bus's subject prefix."""
    return ObjectBucket(bus, uploads_bucket_name(bus.subjects))


def new_upload_name(filename: str) -> str:
    """A fresh stored name for an upload: random hex, plus the original extension if it is a plain one."""
    stem = secrets.token_hex(16)
    base, dot, extension = filename.rpartition(".")
    return f"{stem}.{extension}" if base and dot and _EXTENSION.fullmatch(extension) else stem


def is_upload_name(name: str) -> bool:
    """Whether `name` can be a stored upload's name (nothing else is ever looked up: no paths, no NUL)."""
    return UPLOAD_NAME.fullmatch(name) is not None
