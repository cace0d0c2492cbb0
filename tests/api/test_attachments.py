"""File and image sharing through the real gRPC API (PostgreSQL store; S3 against a real
local S3-compatible server run by moto).

Refusals and their statuses:
  declared size over ATTACHMENT_MAX_BYTES, chunk > 1 MiB, chunk past the declared size,
  wrong offset (message names the expected one), disguised / disallowed content (message
  names the detected type), checksum mismatch (upload reset to 0)   -> INVALID_ARGUMENT
  someone else's (or an unknown) upload_id, unknown attachment     -> NOT_FOUND
  not a member of the group (start an upload, download)            -> PERMISSION_DENIED
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import http.client
import io
import random
import shutil
import struct
import subprocess
import sys
import urllib.parse
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from PIL import Image

from chat_devstack import envoy_config
from chat_devstack.cluster import Cluster, envoy_binary
from chat_devstack.ports import free_port, wait_for_port
from chat_devstack.processes import ServiceProcess, wait_serving
from chat_devstack.tokens import mint
from chat_service.attachments import sniff
from chat_service.attachments.repository import AttachmentRepository
from chat_service.attachments.service import AttachmentService
from chat_service.attachments.settings import (
    AttachmentSettings,
    S3Settings,
    load_attachment_settings,
)
from chat_service.attachments.store import BlobStore
from chat_service.attachments.store_postgres import PostgresBlobStore
from chat_service.attachments.store_s3 import S3BlobStore
from chat_service.config import ConfigError, load_settings
from chat_service.gen import chat_pb2 as pb
from chat_service.storage.postgres.repository import PostgresChatRepository, create_pool
from tests.conftest import UserFactory
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


# ---- pure logic: settings and sniffing (no server needed) ----


def test_attachment_settings_defaults_and_env() -> None:
    d = load_attachment_settings({})
    assert d.max_bytes == 25 * MIB and d.store == "postgres" and d.orphan_ttl_seconds == 7_200
    assert d.allowed_types == (
        "image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain",
        "application/zip",
    )
    assert not d.s3_configured
    s = load_attachment_settings({
        "ATTACHMENT_MAX_BYTES": "1000", "ATTACHMENT_ALLOWED_TYPES": "image/png, Text/Plain",
        "ATTACHMENT_STORE": "s3", "S3_BUCKET": "b", "S3_ENDPOINT_URL": "http://127.0.0.1:9",
        "S3_ACCESS_KEY_ID": "k", "S3_SECRET_ACCESS_KEY": "s", "S3_REGION": "eu-west-1",
        "ATTACHMENT_ORPHAN_TTL_SECONDS": "60",
    })
    assert (s.max_bytes, s.allowed_types, s.store) == (1000, ("image/png", "text/plain"), "s3")
    assert (s.s3.bucket, s.s3.region, s.orphan_ttl_seconds) == ("b", "eu-west-1", 60)
    for bad in (
        {"ATTACHMENT_STORE": "ftp"},
        {"ATTACHMENT_STORE": "s3"},
        {"ATTACHMENT_MAX_BYTES": "lots"},
        {"ATTACHMENT_MAX_BYTES": "0"},
        {"ATTACHMENT_ALLOWED_TYPES": "png"},
        {"S3_ACCESS_KEY_ID": "k"},
    ):
        with pytest.raises(ConfigError):
            load_attachment_settings(bad)


def image_bytes(fmt: str, size: tuple[int, int] = (37, 21)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
def test_images_are_detected_and_measured_from_their_bytes(fmt: str, mime: str) -> None:
    data = image_bytes(fmt)
    assert sniff.detect(data[: sniff.HEAD_BYTES], complete=True) == mime
    assert sniff.image_size(data, mime, whole=True) == (37, 21)
    with pytest.raises(sniff.Refused, match="not a valid"):
        sniff.image_size(data[:12] + bytes(200), mime, whole=True)


def test_detection_of_documents_executables_markup_and_text() -> None:
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("a.txt", "hello")
    cases = {
        b"%PDF-1.7\n": "application/pdf",
        zipped.getvalue(): "application/zip",
        b"MZ\x90\x00" + bytes(100): "application/x-msdownload",
        b"\x7fELF\x02\x01" + bytes(100): "application/x-executable",
        b"  <!doctype HTML><p>hi": "text/html",
        b"<html><body>": "text/html",
        b"<?xml version='1.0'?><svg/>": "image/svg+xml",
        b"<?xml version='1.0'?><note/>": "application/xml",
        "plain ünïcode\n".encode(): "text/plain",
        b"a < b and <c": "text/plain",
        # Texts that start like short signatures (bitmap "BM", executable "MZ", mp3 "ID3").
        b"BMI report\n": "text/plain",
        b"MZ Industries\n": "text/plain",
        b"ID3 tags\n": "text/plain",
        b"BM\x36\x00\x0c\x00\x00\x00\x00\x00\x36\x00": "image/bmp",
        b"%PDF-1.4 all ascii": "application/pdf",
        b"\x00\x01\x02\x03 binary": "application/octet-stream",
        b"\xff\xfe not utf-8": "application/octet-stream",
    }
    for data, mime in cases.items():
        assert sniff.detect(data, complete=True) == mime, data
    # A head cut inside a multi-byte character is still text; a whole file is not.
    cut = "é".encode() * 10 + b"\xc3"
    assert sniff.detect(cut, complete=False) == "text/plain"
    assert sniff.detect(cut, complete=True) == "application/octet-stream"


def test_claims_must_match_the_bytes() -> None:
    allowed = load_attachment_settings({}).allowed_types
    png_head = image_bytes("PNG")
    for claim in ("image/png", "IMAGE/PNG", "image/x-png", "", "application/octet-stream"):
        assert sniff.check(png_head, claimed=claim, allowed=allowed, complete=True) == "image/png"
    with pytest.raises(sniff.Refused, match="image/png, not image/jpeg as declared"):
        sniff.check(png_head, claimed="image/jpeg", allowed=allowed, complete=True)
    with pytest.raises(sniff.Refused, match=r"text/html \(an HTML document\).*not an allowed"):
        sniff.check(b"<html>", claimed="text/plain", allowed=allowed, complete=True)
    assert sniff.check(b"a,b\n1,2\n", claimed="text/csv", allowed=allowed, complete=True) == (
        "text/plain"
    )
    assert sniff.claim_allowed("image/jpg", allowed) and sniff.claim_allowed("text/csv", allowed)
    assert not sniff.claim_allowed("text/html", allowed)
    assert not sniff.claim_allowed("application/x-msdownload", allowed)


def test_text_is_checked_to_the_last_byte() -> None:
    text = "ça va? 🙂\n".encode() * 100
    v = sniff.TextValidator()
    for i in range(0, len(text), 7):  # splits multi-byte characters
        v.feed(text[i : i + 7])
    v.finish()
    v = sniff.TextValidator()
    v.feed(b"ok")
    with pytest.raises(sniff.Refused, match="NUL byte at offset 3"):
        v.feed(b"o\x00")
    v = sniff.TextValidator()
    v.feed(b"ok \xc3")
    with pytest.raises(sniff.Refused, match="truncated"):
        v.finish()


# ---- uploads and downloads ----


async def test_5mib_png_streamed_with_a_break_resumes_and_downloads_identical(
    user: UserFactory,
) -> None:
    alice, bob = user("Alice"), user("Bob")
    group = await alice.create_group(members=[bob.user_id])
    data, width, height = png(5 * MIB)
    assert len(data) >= 5 * MIB
    started = await start_upload(alice, group.id, data)
    assert started.upload_id and started.received_bytes == 0 and not started.complete

    await upload_stream(alice, started.upload_id, data, break_after=9)
    mid = await status(alice, started.upload_id)
    assert mid.received_bytes == 9 * 256 * KIB and not mid.complete
    assert not mid.HasField("attachment")

    # Resuming from anywhere but received_bytes is refused with the offset to resume from.
    await expect_invalid(
        upload_stream(alice, started.upload_id, data, start=0, chunks=1),
        f"expected offset {mid.received_bytes}",
    )
    done = await upload_stream(alice, started.upload_id, data, start=mid.received_bytes)
    assert done is not None and done.complete and done.received_bytes == len(data)
    assert_png_attachment(done.attachment, data, width, height)

    meta, body = await download(bob, started.upload_id)  # another member of the group
    assert body == data
    assert meta == done.attachment


async def test_5mib_png_in_unary_chunks_resumes_and_downloads_identical(
    user: UserFactory,
) -> None:
    alice = user()
    group = await alice.create_group()
    data, width, height = png(5 * MIB, seed=2)
    upload_id = (await start_upload(alice, group.id, data, name="C:\\fakepath\\shot.png")).upload_id
    size = 700 * KIB
    for offset in range(0, 3 * size, size):  # then the tab is closed
        await chunk(alice, upload_id, offset, data[offset : offset + size])
    # A retry of a chunk that was stored already says where to go on.
    await expect_invalid(chunk(alice, upload_id, size, data[size : 2 * size]), "expected offset")

    resume = (await status(alice, upload_id)).received_bytes
    assert resume == 3 * size
    done = await upload_unary(alice, upload_id, data, start=resume, size=size)
    assert done.complete
    assert_png_attachment(done.attachment, data, width, height, name="shot.png")
    assert (await status(alice, upload_id)) == done
    meta, body = await download(alice, upload_id)
    assert body == data and meta == done.attachment
    # Complete: nothing more is taken.
    await expect_invalid(chunk(alice, upload_id, len(data), b"x"), "already complete")


async def test_small_text_and_pdf_files_are_detected_from_their_bytes(user: UserFactory) -> None:
    alice = user()
    group = await alice.create_group()
    text = "héllo wörld\nsecond line ✓\n".encode() * 500  # > 8 KiB, multi-byte characters
    upload = await start_upload(alice, group.id, text, "notes.csv", "text/csv")
    done = await upload_unary(alice, upload.upload_id, text, size=1000)  # splits characters
    assert done.complete and done.attachment.content_type == "text/plain"
    assert (done.attachment.width, done.attachment.height) == (0, 0)
    assert (await download(alice, upload.upload_id))[1] == text

    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
    upload = await start_upload(alice, group.id, pdf, "doc.bin", "")  # no claim: detected
    done = await upload_unary(alice, upload.upload_id, pdf)
    assert done.attachment.content_type == "application/pdf"


async def test_concurrent_retries_of_a_chunk_are_counted_once(
    user: UserFactory, db: asyncpg.Pool
) -> None:
    alice = user()
    group = await alice.create_group()
    data, width, height = png(512 * KIB, seed=12)
    upload_id = (await start_upload(alice, group.id, data)).upload_id
    first = data[: 64 * KIB]
    results = await asyncio.gather(
        *(chunk(alice, upload_id, 0, first) for _ in range(6)), return_exceptions=True
    )
    accepted = [r for r in results if isinstance(r, pb.UploadStatus)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(accepted) + len(refused) == 6 and accepted
    for exc in refused:
        assert exc.code() == INVALID and "expected offset 65536" in (exc.details() or "")
    assert (await status(alice, upload_id)).received_bytes == 64 * KIB
    done = await upload_unary(alice, upload_id, data, start=64 * KIB, size=64 * KIB)
    assert done.complete and (await download(alice, upload_id))[1] == data

    # A pod that died between the last byte and the completion: GetUpload finishes the job.
    await db.execute("UPDATE attachments SET completed_at = NULL WHERE id = $1", upload_id)
    again = await status(alice, upload_id)
    assert again.complete
    assert_png_attachment(again.attachment, data, width, height)


# ---- refusals ----


async def test_declared_size_over_the_limit_is_refused(user: UserFactory) -> None:
    alice = user()
    group = await alice.create_group()
    await expect_invalid(
        start_upload(alice, group.id, b"x", size=25 * MIB + 1, digest="0" * 64),
        "exceeds the limit of 26214400 bytes",
    )
    await expect_invalid(start_upload(alice, group.id, b"", size=0, digest="0" * 64), "size")
    await expect_invalid(start_upload(alice, group.id, b"x", digest="abc"), "sha256")
    await expect_invalid(
        start_upload(alice, group.id, b"x", "run.exe", "application/x-msdownload"),
        "not allowed",
    )


async def test_oversized_chunks_and_bytes_past_the_declared_size_are_refused(
    user: UserFactory,
) -> None:
    alice = user()
    group = await alice.create_group()
    data, _, _ = png(2 * MIB, seed=3)
    upload_id = (await start_upload(alice, group.id, data)).upload_id
    await expect_invalid(chunk(alice, upload_id, 0, data[: MIB + 1]), "limit is 1048576 bytes")
    small = data[:1000]
    upload_id = (await start_upload(alice, group.id, small, size=1000, digest=sha(small))).upload_id
    await expect_invalid(chunk(alice, upload_id, 0, data[:1001]), "beyond the declared size")
    assert (await status(alice, upload_id)).received_bytes == 0


@pytest.mark.parametrize(
    ("payload", "detected"),
    [
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + bytes(200) + b"This program", "x-msdownload"),
        (b"\x7fELF\x02\x01\x01" + bytes(300), "x-executable"),
        (b"<!DOCTYPE html><html><script>alert(document.cookie)</script></html>", "text/html"),
        (b"\xef\xbb\xbf  <svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", "svg"),
    ],
    ids=["windows-exe", "elf", "html", "svg"],
)
async def test_a_disguised_file_claimed_as_png_is_refused_naming_what_it_is(
    user: UserFactory, payload: bytes, detected: str
) -> None:
    alice = user()
    group = await alice.create_group()
    upload_id = (await start_upload(alice, group.id, payload, "cat.png", "image/png")).upload_id
    text = await expect_invalid(chunk(alice, upload_id, 0, payload), detected, "image/png")
    assert "not an allowed type" in text and "discarded" in text
    await expect_status(grpc.StatusCode.NOT_FOUND, status(alice, upload_id))


async def test_the_magic_bytes_are_checked_at_the_first_chunk_and_the_claim_must_match(
    user: UserFactory,
) -> None:
    alice = user()
    group = await alice.create_group()
    data, _, _ = png(300 * KIB, seed=4)
    # A real PNG declared as a PDF: both allowed, but the declaration is false.
    upload_id = (await start_upload(alice, group.id, data, "a.pdf", "application/pdf")).upload_id
    await expect_invalid(
        chunk(alice, upload_id, 0, data[:64 * KIB]), "image/png, not application/pdf"
    )
    # A disguised file is refused at its first chunk, before the rest is sent.
    fake = b"MZ" + bytes(300 * KIB)
    upload_id = (await start_upload(alice, group.id, fake)).upload_id
    await expect_invalid(chunk(alice, upload_id, 0, fake[: 64 * KIB]), "x-msdownload")
    # Text whose first 8 KiB look fine but that has a NUL later is not text/plain.
    sneaky = b"a" * (20 * KIB) + b"\x00" + b"b" * 100
    upload_id = (await start_upload(alice, group.id, sneaky, "a.txt", "text/plain")).upload_id
    await expect_invalid(upload_unary(alice, upload_id, sneaky, size=8 * KIB), "NUL byte")
    await expect_status(grpc.StatusCode.NOT_FOUND, status(alice, upload_id))


async def test_a_wrong_checksum_is_refused_and_the_upload_reset(user: UserFactory) -> None:
    alice = user()
    group = await alice.create_group()
    data, _, _ = png(600 * KIB, seed=5)
    wrong = sha(data + b"!")
    upload_id = (await start_upload(alice, group.id, data, digest=wrong)).upload_id
    await expect_invalid(
        upload_unary(alice, upload_id, data), "sha256 mismatch", wrong, sha(data), "offset 0"
    )
    after = await status(alice, upload_id)
    assert after.received_bytes == 0 and not after.complete
    await expect_status(grpc.StatusCode.NOT_FOUND, download(alice, upload_id))
    # Bytes corrupted in transit: resending the right bytes for a right checksum works.
    good = (await start_upload(alice, group.id, data)).upload_id
    corrupted = data[:1000] + b"\x00" + data[1001:]
    await expect_invalid(upload_stream(alice, good, corrupted), "sha256 mismatch")
    assert (await upload_stream(alice, good, data)).complete  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "name",
    [
        "invoice\u202efdp.bat",  # shows as "invoicetab.pdf"
        "report\u2066.pdf\u2069.exe",
        "\u200fname.png",
        "nul\x00.png",
        "bell\x07.png",
        "line\nbreak.png",
        "esc\x1b[31m.png",
        "del\x7f.png",
    ],
    ids=["rlo", "isolates", "rlm", "nul", "bel", "newline", "ansi-escape", "del"],
)
async def test_file_names_with_control_or_bidi_characters_are_refused(
    user: UserFactory, name: str
) -> None:
    alice = user()
    group = await alice.create_group()
    text = await expect_invalid(start_upload(alice, group.id, b"hello", name, "text/plain"),
                                "file_name contains")
    assert "control character" in text and "U+" in text


async def test_no_upload_input_reaches_internal(user: UserFactory) -> None:
    """Odd sizes, offsets, digests, content types and ids: each gets a status that names
    the problem; none INTERNAL (e.g. a NUL in the content type reached a TEXT column)."""
    alice = user()
    group = await alice.create_group()
    data = b"hello world\n"
    for content_type, words in (
        ("text/plain\x00", ("content_type contains", "U+0000")),
        ("text/\u202eplain", ("content_type contains", "U+202E")),
        ("text/" + "x" * 300, ("content_type is 305 characters",)),
    ):
        await expect_invalid(start_upload(alice, group.id, data, "a.txt", content_type), *words)
    for size in (-1, -(2**63), 2**63 - 1, 25 * MIB + 1):
        await expect_invalid(start_upload(alice, group.id, data, "a.txt", "text/plain", size=size),
                             "size")
    for digest in (sha(data) + "\n", sha(data)[:63] + "g", "\x00" * 64, "é" * 64, ""):
        await expect_invalid(
            start_upload(alice, group.id, data, "a.txt", "text/plain", digest=digest), "sha256"
        )
    for group_id in (0, -5, 2**63 - 1):
        exc = await expect_status(
            INVALID if group_id <= 0 else grpc.StatusCode.PERMISSION_DENIED,
            start_upload(alice, group_id, data, "a.txt", "text/plain"),
        )
        assert "group" in (exc.details() or "")
    upload_id = (await start_upload(alice, group.id, data, "a.txt", "text/plain")).upload_id
    for offset in (-1, -(2**63), 2**63 - 1, 1):
        await expect_invalid(chunk(alice, upload_id, offset, data), "expected offset 0")
    for bad_id in ("\x00", upload_id + "\n", "x" * 100_000, "../" + upload_id, "\u202e"):
        exc = await expect_status(grpc.StatusCode.NOT_FOUND, chunk(alice, bad_id, 0, data))
        assert len(exc.details() or "") < 200  # not echoed back
        await expect_status(grpc.StatusCode.NOT_FOUND, status(alice, bad_id))
        await expect_status(grpc.StatusCode.NOT_FOUND, download(alice, bad_id))
    done = await chunk(alice, upload_id, 0, data)
    assert done.complete and done.attachment.content_type == "text/plain"


async def test_someone_elses_upload_is_not_found(user: UserFactory) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    data, _, _ = png(100 * KIB, seed=6)
    upload_id = (await start_upload(alice, group.id, data)).upload_id
    await expect_status(grpc.StatusCode.NOT_FOUND, chunk(bob, upload_id, 0, data[:1000]))
    await expect_status(grpc.StatusCode.NOT_FOUND, status(bob, upload_id))
    await expect_status(grpc.StatusCode.NOT_FOUND, upload_stream(bob, upload_id, data, chunks=0))
    await expect_status(grpc.StatusCode.NOT_FOUND, status(alice, "no-such-upload"))
    assert (await status(alice, upload_id)).received_bytes == 0
    # Nor can a member download it before it is complete.
    await expect_status(grpc.StatusCode.NOT_FOUND, download(bob, upload_id))


async def test_a_non_member_can_neither_upload_to_the_group_nor_download(
    user: UserFactory,
) -> None:
    alice, mallory = user(), user()
    group = await alice.create_group()
    data, _, _ = png(100 * KIB, seed=7)
    exc = await expect_status(
        grpc.StatusCode.PERMISSION_DENIED, start_upload(mallory, group.id, data)
    )
    assert f"not a member of group {group.id}" in (exc.details() or "")
    upload_id = (await start_upload(alice, group.id, data)).upload_id
    assert (await upload_unary(alice, upload_id, data)).complete
    await expect_status(grpc.StatusCode.PERMISSION_DENIED, download(mallory, upload_id))
    # Leaving the group ends access too.
    await mallory.join(group.id)
    assert (await download(mallory, upload_id))[1] == data
    await mallory.leave(group.id)
    await expect_status(grpc.StatusCode.PERMISSION_DENIED, download(mallory, upload_id))


async def test_unauthenticated_calls_are_refused(channel: grpc.aio.Channel) -> None:
    stranger = ChatClient(channel, "not-a-token", 0)
    await expect_status(
        grpc.StatusCode.UNAUTHENTICATED,
        start_upload(stranger, 1, b"x"),
    )
    await expect_status(grpc.StatusCode.UNAUTHENTICATED, download(stranger, "x"))


# ---- sending, deleting, cleaning up ----


@pytest.fixture
async def db(stack: Cluster) -> AsyncIterator[asyncpg.Pool]:
    s = load_settings(stack.env, for_serving=False)
    pool = await create_pool(s.db_dsn, s.db_password, 1, 4)
    yield pool
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


async def claim(pool: asyncpg.Pool, owner: int, group_id: int, upload_id: str) -> bool:
    """What the message code does when a message carrying the attachment is posted."""
    done = await pool.execute(
        "UPDATE attachments SET message_id = $4 WHERE id = $1 AND owner_id = $2 "
        "AND group_id = $3 AND completed_at IS NOT NULL AND message_id IS NULL",
        upload_id,
        owner,
        group_id,
        random.randint(1 << 40, 1 << 50),
    )
    return bool(done == "UPDATE 1")


async def test_unsent_uploads_are_cleaned_up_after_the_ttl_on_any_number_of_pods(
    user: UserFactory, db: asyncpg.Pool
) -> None:
    alice = user()
    group = await alice.create_group()
    data, _, _ = png(300 * KIB, seed=8)
    ids = [(await start_upload(alice, group.id, data)).upload_id for _ in range(4)]
    unsent_done, unsent_partial, sent, fresh = ids
    for upload_id in (unsent_done, sent, fresh):
        assert (await upload_unary(alice, upload_id, data, size=64 * KIB)).complete
    await chunk(alice, unsent_partial, 0, data[: 64 * KIB])
    assert not await claim(db, alice.user_id, group.id, unsent_partial)  # not complete
    assert await claim(db, alice.user_id, group.id, sent)
    await age(db, unsent_done, unsent_partial, sent)

    # Two pods sweep at once: each orphan is deleted exactly once, nothing else.
    pods = [second_service(db), second_service(db)]
    counts = await asyncio.gather(*(p.cleanup_orphans(batch=1) for p in pods))
    assert sum(counts) >= 2
    for gone in (unsent_done, unsent_partial):
        await expect_status(grpc.StatusCode.NOT_FOUND, status(alice, gone))
        assert await db.fetchval(
            "SELECT count(*) FROM attachment_chunks WHERE attachment_id = $1", gone
        ) == 0
    assert (await download(alice, sent))[1] == data
    assert (await download(alice, fresh))[1] == data
    # An upload being deleted can no longer be claimed by a message.
    assert not await claim(db, alice.user_id, group.id, unsent_done)

    # purge (a message with the attachment was deleted) removes bytes and row.
    await pods[0].purge(sent)
    await pods[1].purge(sent)  # idempotent
    await expect_status(grpc.StatusCode.NOT_FOUND, download(alice, sent))
    assert await db.fetchval(
        "SELECT count(*) FROM attachment_chunks WHERE attachment_id = $1", sent
    ) == 0
    for pod in pods:
        await pod.stop()


async def send_image(client: ChatClient, group_id: int, upload_id: str) -> pb.MessageResponse:
    return await client.stub.SendMessage(
        pb.SendMessageRequest(
            group_id=group_id,
            content="look",
            type=pb.IMAGE,
            client_msg_id=upload_id,
            attachment_id=upload_id,
        ),
        metadata=client.metadata,
    )


async def test_a_sent_attachment_shows_in_history_and_goes_with_its_message(
    user: UserFactory,
) -> None:
    alice, bob = user(), user()
    group = await alice.create_group(members=[bob.user_id])
    data, _, _ = png(200 * KIB, seed=9)
    upload_id = (await start_upload(alice, group.id, data)).upload_id
    done = await upload_stream(alice, upload_id, data)
    assert done is not None
    message = await send_image(alice, group.id, upload_id)
    assert message.attachment == done.attachment
    await expect_invalid(send_image(alice, group.id, upload_id), "not a finished, unsent")
    await expect_invalid(send_image(bob, group.id, upload_id), "not a finished, unsent")
    await expect_invalid(
        alice.stub.SendMessage(pb.SendMessageRequest(group_id=group.id, type=pb.IMAGE,
                                                     content="no file"),
                               metadata=alice.metadata),
        "attachment_id",
    )
    history = await bob.history(group.id)
    assert history.messages[-1].attachment == done.attachment
    assert (await download(bob, upload_id))[1] == data
    await alice.stub.DeleteMessage(
        pb.DeleteMessageRequest(message_id=message.id), metadata=alice.metadata
    )
    await expect_status(grpc.StatusCode.NOT_FOUND, download(bob, upload_id))


# ---- the S3 store, against a real S3-compatible server (moto_server) ----

BUCKET = "chat-attachments"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    here = Path(sys.executable).parent / "moto_server"  # the venv may not be on PATH
    binary = str(here) if here.exists() else shutil.which("moto_server")
    assert binary, "moto_server is missing: pip install -e '.[dev]' (moto[server])"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def s3_settings(endpoint: str) -> S3Settings:
    return S3Settings(
        endpoint_url=endpoint, bucket=BUCKET, access_key_id="test", secret_access_key="test"
    )


@pytest.fixture
async def s3_client(s3_endpoint: str) -> AsyncIterator[Any]:
    async with get_session().create_client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=AioConfig(s3={"addressing_style": "path"}),
    ) as client:
        with contextlib.suppress(Exception):
            await client.create_bucket(Bucket=BUCKET)
        yield client


async def s3_keys(client: Any, upload_id: str) -> list[str]:
    reply = await client.list_objects_v2(Bucket=BUCKET, Prefix=f"attachments/{upload_id}/")
    return [item["Key"] for item in reply.get("Contents", [])]


@pytest.fixture
async def s3_pod(stack: Cluster, s3_endpoint: str, s3_client: Any) -> AsyncIterator[str]:
    """A second service process on the same database whose new uploads go to S3."""
    env = {
        **stack.env,
        "ATTACHMENT_STORE": "s3",
        "S3_ENDPOINT_URL": s3_endpoint,
        "S3_BUCKET": BUCKET,
        "S3_ACCESS_KEY_ID": "test",
        "S3_SECRET_ACCESS_KEY": "test",
        "S3_REGION": "us-east-1",
        "SHUTDOWN_DRAIN_SECONDS": "0",
        "SHUTDOWN_GRACE_SECONDS": "1",
    }
    pod = ServiceProcess("pod-s3", env, free_port(), stack.base_dir)
    await asyncio.to_thread(pod.start)
    try:
        yield pod.address
    finally:
        await asyncio.to_thread(pod.stop, 15)


async def test_s3_store_round_trip_through_the_api_and_cleanup(
    s3_pod: str, s3_client: Any, s3_endpoint: str, secret: str, new_user_id: Any,
    user: UserFactory, db: asyncpg.Pool,
) -> None:
    async with grpc.aio.insecure_channel(s3_pod) as channel:
        uid = new_user_id()
        alice = ChatClient(channel, mint(secret, uid, name="Alice"), uid)
        group = await alice.create_group()
        data, width, height = png(3 * MIB, seed=10)
        upload_id = (await start_upload(alice, group.id, data)).upload_id
        await upload_stream(alice, upload_id, data, size=512 * KIB, break_after=2)
        resume = (await status(alice, upload_id)).received_bytes
        assert resume == MIB
        done = await upload_stream(alice, upload_id, data, start=resume, size=512 * KIB)
        assert done is not None and done.complete
        assert_png_attachment(done.attachment, data, width, height)
        meta, body = await download(alice, upload_id)
        assert body == data and meta == done.attachment
        uid = new_user_id()
        other = ChatClient(channel, mint(secret, uid, name="Other"), uid)
        await expect_status(grpc.StatusCode.PERMISSION_DENIED, download(other, upload_id))
        await other.join(group.id)
        assert (await download(other, upload_id))[1] == data

    # The bytes are in the bucket, one object per chunk, none in PostgreSQL.
    keys = await s3_keys(s3_client, upload_id)
    assert len(keys) == -(-len(data) // (512 * KIB))
    assert await db.fetchval(
        "SELECT count(*) FROM attachment_chunks WHERE attachment_id = $1", upload_id
    ) == 0
    assert await db.fetchval("SELECT store FROM attachments WHERE id = $1", upload_id) == "s3"
    # A pod that has no S3 configured says so instead of failing obscurely.
    stranger = user()
    await stranger.join(group.id)
    exc = await expect_status(grpc.StatusCode.UNAVAILABLE, download(stranger, upload_id))
    assert "'s3' is not configured" in (exc.details() or "")

    # The cleanup deletes the objects too.
    s3 = S3BlobStore(s3_settings(s3_endpoint))
    await s3.open()
    sweeper = second_service(db, {"postgres": PostgresBlobStore(db), "s3": s3})
    await age(db, upload_id)
    assert await sweeper.cleanup_orphans() >= 1
    assert await s3_keys(s3_client, upload_id) == []
    await expect_status(grpc.StatusCode.NOT_FOUND, download(stranger, upload_id))
    await sweeper.stop()


# ---- gRPC-Web: a browser's unary chunks through Envoy ----


@pytest.fixture(scope="module")
def envoy_port(stack: Cluster) -> Iterator[int]:
    """Envoy (the same rendered config as the cluster's) in front of the stack's pod."""
    port, admin = free_port(), free_port()
    config = stack.base_dir / f"envoy-attachments-{port}.json"
    config.write_text(
        envoy_config.render(
            listen_host="127.0.0.1",
            listen_port=port,
            admin_port=admin,
            probes_port=free_port(),
            public_health=True,  # wait_serving below asks Health/Check through Envoy
            upstreams=[envoy_config.Upstream("127.0.0.1", stack.services[0].grpc_port)],
        )
    )
    proc = subprocess.Popen(
        [envoy_binary(), "-c", str(config), "--disable-hot-restart", "--base-id", str(port),
         "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        wait_serving(f"127.0.0.1:{port}", timeout=30)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def grpc_web(
    port: int, method: str, message: bytes, token: str
) -> tuple[list[bytes], dict[str, str]]:
    """One gRPC-Web call exactly as a browser makes it: HTTP/1.1 POST, grpc-web+proto.
    Returns the messages and the status (trailer frame, or headers when trailers-only)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            "POST",
            f"/chat.ChatService/{method}",
            body=b"\x00" + struct.pack(">I", len(message)) + message,
            headers={
                "content-type": "application/grpc-web+proto",
                "x-grpc-web": "1",
                "x-user-agent": "grpc-web-javascript/0.1",
                "origin": "http://localhost:5173",
                "authorization": f"Bearer {token}",
            },
        )
        response = conn.getresponse()
        assert response.status == 200, response.status
        body = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()
    messages: list[bytes] = []
    trailers = {k: v for k, v in headers.items() if k.startswith("grpc-")}
    pos = 0
    while pos + 5 <= len(body):
        (length,) = struct.unpack(">I", body[pos + 1 : pos + 5])
        frame = body[pos + 5 : pos + 5 + length]
        if body[pos] & 0x80:
            for line in frame.decode().split("\r\n"):
                key, _, value = line.partition(":")
                trailers[key.strip().lower()] = value.strip()
        else:
            messages.append(frame)
        pos += 5 + length
    return messages, trailers


async def test_browser_uploads_1mib_chunks_over_grpc_web_and_downloads(
    envoy_port: int, user: UserFactory
) -> None:
    alice = user()
    group = await alice.create_group()
    data, width, height = png(3 * MIB, seed=11)

    async def call(method: str, request: Any) -> tuple[list[bytes], dict[str, str]]:
        return await asyncio.to_thread(
            grpc_web, envoy_port, method, request.SerializeToString(), alice.token
        )

    replies, trailers = await call(
        "StartUpload",
        pb.StartUploadRequest(
            group_id=group.id, file_name="web.png", content_type="image/png",
            size=len(data), sha256=sha(data),
        ),
    )
    assert trailers["grpc-status"] == "0", trailers
    upload_id = pb.UploadStatus.FromString(replies[0]).upload_id
    for offset in range(0, len(data), MIB):  # the largest chunk allowed
        replies, trailers = await call(
            "UploadChunk",
            pb.UploadChunkRequest(upload_id=upload_id, offset=offset,
                                  data=data[offset : offset + MIB]),
        )
        assert trailers["grpc-status"] == "0", trailers
    done = pb.UploadStatus.FromString(replies[0])
    assert done.complete
    assert_png_attachment(done.attachment, data, width, height, name="web.png")

    # A refusal reaches the browser as a status with its message.
    _, trailers = await call(
        "UploadChunk", pb.UploadChunkRequest(upload_id=upload_id, offset=0, data=b"x")
    )
    assert trailers["grpc-status"] == str(INVALID.value[0])
    assert "already complete" in urllib.parse.unquote(trailers["grpc-message"])

    replies, trailers = await call("DownloadFile", pb.DownloadFileRequest(attachment_id=upload_id))
    assert trailers["grpc-status"] == "0", trailers
    chunks = [pb.DownloadChunk.FromString(r) for r in replies]
    assert chunks[0].attachment == done.attachment
    assert all(len(c.data) <= 256 * KIB for c in chunks)
    assert b"".join(c.data for c in chunks) == data
