"""Uploads through an in-process gateway on the real NATS: the Object Store round trip, the 10 MB limit, safe names, the tools."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from actors.tools import BUILTIN_TOOLS, ToolContext, ToolError
from bus import MAX_UPLOAD_BYTES, Bus, is_upload_name, new_upload_name, uploads, uploads_bucket_name
from gateway import GatewayContext, create_app
from projections import Engine, EventLog, ReadModels, create_engine, migrate
from schemas import Subjects
from tests.conftest import new_database

BOUNDARY = "agentbus-test-boundary"
CHUNK = 64 * 1024


@pytest.fixture(scope="module")
async def engine(postgres_url: str) -> AsyncIterator[Engine]:
    """One database for the module: the gateway needs an event log, the uploads never touch it."""
    async with new_database(postgres_url) as url:
        engine = create_engine(url)
        await migrate(engine)
        yield engine
        await engine.dispose()


@pytest.fixture
async def bus(nats_url: str, subject_prefix: str) -> AsyncIterator[Bus]:
    """A connection under the test's own prefix; its uploads bucket is deleted afterwards."""
    bus = await Bus.connect(nats_url, name="uploads-test", subjects=Subjects(subject_prefix))
    yield bus
    try:
        await bus.nc.jetstream().delete_object_store(uploads_bucket_name(bus.subjects))
    except Exception:  # never created by the test
        pass
    await bus.close()


def gateway(bus: Bus, engine: Engine, api_key: str | None = None) -> httpx.AsyncClient:
    """A gateway of its own on `bus` (the event log is there only because the app needs one)."""
    ctx = GatewayContext(bus=bus, event_log=EventLog(engine), read_models=ReadModels(engine), api_key=api_key)
    transport = httpx.ASGITransport(app=create_app(ctx))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway/api/v1/chat")


def form_head(filename: str, content_type: str = "application/octet-stream") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()


FORM_TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()
FORM_TYPE = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


async def object_messages(bus: Bus) -> int:
    """How many messages the uploads bucket's stream holds (chunks and metadata); 0 before its first upload."""
    try:
        info = await bus.nc.jetstream().stream_info(f"OBJ_{uploads_bucket_name(bus.subjects)}")
    except Exception:
        return 0
    return int(info.state.messages)


async def test_an_upload_downloads_byte_for_byte_as_an_attachment_named_after_its_stored_name(
    bus: Bus, engine: Engine
) -> None:
    content = bytes(range(256)) * 1200  # 300 KiB: several 128 KiB chunks in the store
    async with gateway(bus, engine) as client:
        response = await client.post("/upload", files={"file": ("report.final.PDF", content, "application/pdf")})
        assert response.status_code == 200, response.text
        body = response.json()
        stored = body["stored_name"]
        assert re.fullmatch(r"[0-9a-f]{32}\.PDF", stored)
        assert body == {
            "filename": "report.final.PDF",
            "stored_name": stored,
            "content_type": "application/pdf",
            "size": len(content),
            "download_url": f"/api/v1/chat/uploads/{stored}",
        }
        download = await client.get(body["download_url"].removeprefix("/api/v1/chat"))
    assert download.status_code == 200 and download.content == content
    assert download.headers["content-disposition"] == f'attachment; filename="{stored}"'
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["content-length"] == str(len(content))
    assert download.headers["x-content-type-options"] == "nosniff"


async def test_the_upload_is_in_nats_for_every_gateway_and_worker(
    bus: Bus, engine: Engine, nats_url: str, subject_prefix: str
) -> None:
    """The store is NATS: another connection reads it back through bus/objects.py, another gateway serves it."""
    async with gateway(bus, engine) as client:
        stored = (await client.post("/upload", files={"file": ("notes.txt", b"shared", "text/plain")})).json()
    other = await Bus.connect(nats_url, name="another-process", subjects=Subjects(subject_prefix))
    try:
        info = await uploads(other).info(stored["stored_name"])
        assert info is not None and (info.size, info.content_type, info.filename) == (6, "text/plain", "notes.txt")
        assert b"".join([chunk async for chunk in uploads(other).chunks(stored["stored_name"])]) == b"shared"
        async with gateway(other, engine) as second:
            served = await second.get(f"/uploads/{stored['stored_name']}")
        assert served.status_code == 200 and served.content == b"shared"
        assert served.headers["content-type"] == "text/plain"  # as uploaded: no charset is claimed for it
    finally:
        await other.close()


async def test_a_file_of_10_mb_is_stored_and_one_byte_more_is_refused_while_streaming(bus: Bus, engine: Engine) -> None:
    sent = [0]

    async def body(size: int, trailing: int = 0) -> AsyncIterator[bytes]:
        """The form, streamed without a Content-Length; `trailing` more file bytes after `size` (none need be read)."""
        yield form_head("big.bin")
        for offset in range(0, size + trailing, CHUNK):
            piece = b"x" * min(CHUNK, size + trailing - offset)
            sent[0] += len(piece)
            yield piece
        yield FORM_TAIL

    async with gateway(bus, engine) as client:
        exact = await client.post("/upload", content=body(MAX_UPLOAD_BYTES), headers=FORM_TYPE)
        assert exact.status_code == 200 and exact.json()["size"] == MAX_UPLOAD_BYTES
        before = await object_messages(bus)

        sent[0] = 0
        over = 40 * 1024 * 1024
        refused = await client.post("/upload", content=body(MAX_UPLOAD_BYTES + 1, trailing=over), headers=FORM_TYPE)
        assert refused.status_code == 413 and refused.json()["code"] == "too_large"
        # Answered once the limit was crossed, not after reading the 50 MB offered.
        assert MAX_UPLOAD_BYTES < sent[0] <= MAX_UPLOAD_BYTES + 2 * CHUNK

        declared = await client.post(
            "/upload", content=form_head("big.bin") + b"x" * (MAX_UPLOAD_BYTES + 1) + FORM_TAIL, headers=FORM_TYPE
        )
        assert declared.status_code == 413
    assert await object_messages(bus) == before  # nothing of a refused upload was stored


@pytest.mark.parametrize(
    "path",
    [
        "%2e%2e",
        "..%2F..%2Fpyproject.toml",
        "%2e%2e%2f%2e%2e%2fpyproject.toml",
        "%2Fetc%2Fpasswd",
        "/etc/passwd",
        "notes%00.txt",
        "0123456789abcdef0123456789abcdef.txt%00",
        "0123456789abcdef0123456789abcdef.txt%2F..",
        "0123456789abcdef0123456789abcdef%5C..%5Cx",
        "0123456789ABCDEF0123456789ABCDEF.txt",
        "0123456789abcdef0123456789abcdef.txt",
        "",
    ],
)
async def test_a_name_that_is_not_a_stored_upload_is_a_404(bus: Bus, engine: Engine, path: str) -> None:
    """Traversal, encoded slashes, absolute paths, NUL, and well-formed names never stored: all 404."""
    async with gateway(bus, engine) as client:
        await client.post("/upload", files={"file": ("a.txt", b"a", "text/plain")})
        response = await client.get("/uploads/" + path)
    assert response.status_code == 404 and response.json()["code"] == "unknown_upload"


async def test_bad_forms_are_refused_with_a_clear_error(bus: Bus, engine: Engine) -> None:
    async with gateway(bus, engine) as client:
        not_a_form = await client.post("/upload", content=b"raw bytes", headers={"content-type": "text/plain"})
        no_file = await client.post("/upload", files={"other": ("a.txt", b"a")})
        cut = await client.post("/upload", content=form_head("a.txt") + b"half a file", headers=FORM_TYPE)
    assert (not_a_form.status_code, not_a_form.json()["code"]) == (415, "unsupported_media_type")
    assert (no_file.status_code, no_file.json()["code"]) == (422, "missing_file")
    assert (cut.status_code, cut.json()["code"]) == (400, "invalid_body")
    assert await object_messages(bus) == 0


async def test_parts_whose_headers_are_not_latin_1_are_read_not_a_500(bus: Bus, engine: Engine) -> None:
    """What schemathesis sent: other fields named in any script before the file (part headers are bytes)."""
    other = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="礫é"\r\n\r\ntrue\r\n'.encode()
    async with gateway(bus, engine) as client:
        response = await client.post(
            "/upload", content=other + form_head("笔记.txt") + b"hello" + FORM_TAIL, headers=FORM_TYPE
        )
    assert response.status_code == 200, response.text
    assert response.json()["filename"] == "笔记.txt" and response.json()["size"] == 5


async def test_uploads_need_the_api_key_as_every_rest_route(bus: Bus, engine: Engine) -> None:
    async with gateway(bus, engine, api_key="s3cret") as client:
        refused = await client.post("/upload", files={"file": ("a.txt", b"a")})
        stored = await client.post("/upload", files={"file": ("a.txt", b"a")}, headers={"x-api-key": "s3cret"})
        name = stored.json()["stored_name"]
        anonymous = await client.get(f"/uploads/{name}")
        keyed = await client.get(f"/uploads/{name}?api_key=s3cret")
    assert (refused.status_code, stored.status_code, anonymous.status_code, keyed.status_code) == (401, 200, 401, 200)


def test_stored_names_are_random_hex_with_the_original_extension_when_it_is_plain() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}\.txt", new_upload_name("notes.txt"))
    assert re.fullmatch(r"[0-9a-f]{32}", new_upload_name("../../etc/passwd"))
    assert re.fullmatch(r"[0-9a-f]{32}", new_upload_name(".bashrc"))
    assert re.fullmatch(r"[0-9a-f]{32}", new_upload_name("x.tar%00"))
    assert re.fullmatch(r"[0-9a-f]{32}", new_upload_name("x.extensionistoolong"))
    assert new_upload_name("a.txt") != new_upload_name("a.txt")
    assert all(is_upload_name(new_upload_name(n)) for n in ("a.txt", "b", "c.d.e", "ü.ß"))


async def call(bus: Bus, tool: str, arguments: str) -> str:
    found = BUILTIN_TOOLS.get(tool)
    assert found is not None
    return await found.call(arguments, ToolContext(bus=bus))


async def test_read_upload_gives_text_bounded_and_describes_binary(bus: Bus, engine: Engine) -> None:
    async with gateway(bus, engine) as client:
        text = (await client.post("/upload", files={"file": ("a.md", "héllo wörld\n" * 1000, "text/markdown")})).json()
        binary = (await client.post("/upload", files={"file": ("p.png", b"\x89PNG\r\n\x1a\n\x00", "image/png")})).json()
    whole = await call(bus, "read_upload", f'{{"filename": "{text["download_url"]}"}}')
    assert whole.endswith("first 4096 bytes:\n" + ("héllo wörld\n" * 1000).encode()[:4096].decode())
    clamped = await call(bus, "read_upload", f'{{"filename": "{text["stored_name"]}", "max_bytes": 100000}}')
    assert clamped.endswith("'a.md'):\n" + "héllo wörld\n" * 1000)  # 14000 bytes: under the 16 KiB a call may read
    first = await call(bus, "read_upload", f'{{"filename": "{text["stored_name"]}", "max_bytes": 2}}')
    assert first.endswith("first 1 bytes:\nh")  # a character cut in two is left out
    assert "text/markdown" in first and f"{text['size']} bytes" in first and "'a.md'" in first
    described = await call(bus, "read_upload", f'{{"filename": "{binary["stored_name"]}"}}')
    assert described.endswith("is a binary file; it cannot be shown as text.") and "image/png" in described
    missing = await call(bus, "read_upload", '{"filename": "0123456789abcdef0123456789abcdef.txt"}')
    assert missing == "There is no upload named 0123456789abcdef0123456789abcdef.txt."


async def test_delete_upload_deletes_only_uploads_from_the_store(bus: Bus, engine: Engine) -> None:
    async with gateway(bus, engine) as client:
        name = (await client.post("/upload", files={"file": ("old.txt", b"bye", "text/plain")})).json()["stored_name"]
        assert await call(bus, "delete_upload", f'{{"filename": "{name}"}}') == f"Deleted the upload {name}."
        assert await uploads(bus).info(name) is None
        assert (await client.get(f"/uploads/{name}")).status_code == 404
    again = await call(bus, "delete_upload", f'{{"filename": "{name}"}}')
    assert again == f"There is no upload named {name}; nothing was deleted."
    for bad in ("../pyproject.toml", "/etc/passwd", "old.txt", "a\\u0000.txt"):
        with pytest.raises(ToolError, match="not an upload's stored name"):
            await call(bus, "delete_upload", f'{{"filename": "{bad}"}}')
