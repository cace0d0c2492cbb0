"""Shared by the attachment tests (tests/api/test_attachments*.py,
tests/cluster/test_attachments_grpc_web.py): sample files, the upload and download calls as
a client makes them, and another pod's AttachmentService on the stack's database."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
from PIL import Image

from chat_devstack.cluster import Cluster
from chat_service.attachments.repository import AttachmentRepository
from chat_service.attachments.service import AttachmentService
from chat_service.attachments.settings import (
    AttachmentSettings,
)
from chat_service.attachments.store import BlobStore
from chat_service.attachments.store_postgres import PostgresBlobStore
from chat_service.config import load_settings
from chat_service.gen import chat_pb2 as pb
from chat_service.storage.postgres.repository import PostgresChatRepository, create_pool
from tests.support.chat_client import ChatClient, expect_status

KIB = 1024
MIB = 1024 * KIB
INVALID = grpc.StatusCode.INVALID_ARGUMENT


# ---- helpers ----


@functools.cache
def png(min_bytes: int, seed: int = 1) -> tuple[bytes, int, int]:
    """A real PNG of noise (incompressible, so at least `min_bytes`): (bytes, width, height)."""
    rng = random.Random(seed)
    width = 1031
    height = min_bytes // (width * 3) + 1
    image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue(), width, height


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def start_upload(
    client: ChatClient,
    group_id: int,
    data: bytes,
    name: str = "picture.png",
    content_type: str = "image/png",
    size: int | None = None,
    digest: str | None = None,
) -> pb.UploadStatus:
    return await client.stub.StartUpload(
        pb.StartUploadRequest(
            group_id=group_id,
            file_name=name,
            content_type=content_type,
            size=len(data) if size is None else size,
            sha256=sha(data) if digest is None else digest,
        ),
        metadata=client.metadata,
    )


async def chunk(client: ChatClient, upload_id: str, offset: int, data: bytes) -> pb.UploadStatus:
    return await client.stub.UploadChunk(
        pb.UploadChunkRequest(upload_id=upload_id, offset=offset, data=data),
        metadata=client.metadata,
    )


async def status(client: ChatClient, upload_id: str) -> pb.UploadStatus:
    return await client.stub.GetUpload(
        pb.GetUploadRequest(upload_id=upload_id), metadata=client.metadata
    )


async def upload_unary(
    client: ChatClient, upload_id: str, data: bytes, start: int = 0, size: int = 256 * KIB
) -> pb.UploadStatus:
    reply = None
    for offset in range(start, len(data), size):
        reply = await chunk(client, upload_id, offset, data[offset : offset + size])
    assert reply is not None
    return reply


async def upload_stream(
    client: ChatClient,
    upload_id: str,
    data: bytes,
    start: int = 0,
    size: int = 256 * KIB,
    break_after: int | None = None,
    chunks: int | None = None,
) -> pb.UploadStatus | None:
    """UploadFile from `start` (at most `chunks` chunks). With `break_after`, the stream
    stalls after that many chunks and is cut (cancelled) once the server has stored them:
    a dropped connection.

    Tests that expect a refusal send only up to the refused chunk: a grpc.aio *client* that
    is still writing when the server ends the call may report INTERNAL "Internal error from
    Core" instead of the server's status (grpc/grpc#36066)."""

    async def requests() -> AsyncIterator[pb.UploadChunkRequest]:
        yield pb.UploadChunkRequest(upload_id=upload_id)  # names the upload, carries no data
        for n, offset in enumerate(range(start, len(data), size)):
            if n == chunks:
                return
            if n == break_after:
                await asyncio.Event().wait()  # stall until cancelled
            yield pb.UploadChunkRequest(offset=offset, data=data[offset : offset + size])

    call: Any = client.stub.UploadFile(requests(), metadata=client.metadata)
    if break_after is None:
        reply: pb.UploadStatus = await call
        return reply
    stored = start + break_after * size

    async def until_stored() -> None:
        while (await status(client, upload_id)).received_bytes < stored:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(until_stored(), 30)
    call.cancel()
    with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
        await call
    return None


async def download(client: ChatClient, attachment_id: str) -> tuple[pb.Attachment, bytes]:
    meta: pb.Attachment | None = None
    parts: list[bytes] = []
    call: Any = client.stub.DownloadFile(
        pb.DownloadFileRequest(attachment_id=attachment_id), metadata=client.metadata
    )
    async for piece in call:
        if not parts:
            assert piece.HasField("attachment"), "the first chunk carries the metadata"
            meta = piece.attachment
        else:
            assert not piece.HasField("attachment")
        assert 0 < len(piece.data) <= 256 * KIB
        parts.append(piece.data)
    assert meta is not None
    return meta, b"".join(parts)


def assert_png_attachment(
    got: pb.Attachment, data: bytes, width: int, height: int, name: str = "picture.png"
) -> None:
    assert got.content_type == "image/png"
    assert (got.width, got.height) == (width, height)
    assert got.sha256 == sha(data)
    assert got.size == len(data)
    assert got.file_name == name


async def expect_invalid(awaitable: Any, *words: str) -> str:
    exc = await expect_status(INVALID, awaitable)
    text = exc.details() or ""
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"
    return text


# ---- another pod on the same database ----


@contextlib.asynccontextmanager
async def stack_db(stack: Cluster) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on the stack's PostgreSQL, for looking behind the API."""
    s = load_settings(stack.env, for_serving=False)
    pool = await create_pool(s.database.dsn, s.database.password, 1, 4)
    try:
        yield pool
    finally:
        await pool.close()


def second_service(
    pool: asyncpg.Pool, stores: dict[str, BlobStore] | None = None
) -> AttachmentService:
    """Another pod's AttachmentService on the same database (default settings: TTL 2 h)."""
    return AttachmentService(
        AttachmentRepository(pool),
        stores or {"postgres": PostgresBlobStore(pool)},
        AttachmentSettings(),
        PostgresChatRepository(pool).role_of,
    )


async def age(pool: asyncpg.Pool, *upload_ids: str, hours: int = 25) -> None:
    await pool.execute(
        "UPDATE attachments SET created_at = now() - make_interval(hours => $2) "
        "WHERE id = ANY($1::text[])",
        list(upload_ids),
        hours,
    )
