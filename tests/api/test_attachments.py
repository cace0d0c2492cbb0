"""File and image sharing through the real gRPC API, with the PostgreSQL blob store.

Refusals and their statuses:
  declared size over ATTACHMENT_MAX_BYTES, chunk > 1 MiB, chunk past the declared size,
  wrong offset (message names the expected one), disguised / disallowed content (message
  names the detected type), checksum mismatch (upload reset to 0)   -> INVALID_ARGUMENT
  someone else's (or an unknown) upload_id, unknown attachment     -> NOT_FOUND
  not a member of the group (start an upload, download)            -> PERMISSION_DENIED

Settings and content sniffing: tests/unit/test_attachment_sniffing.py; the S3 store:
test_attachments_s3.py; gRPC-Web through Envoy: tests/cluster/test_attachments_grpc_web.py;
shared helpers: tests/support/attachments.py.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_service.gen import chat_pb2 as pb
from tests.conftest import UserFactory
from tests.support.attachments import (
    INVALID,
    KIB,
    MIB,
    age,
    assert_png_attachment,
    chunk,
    download,
    expect_invalid,
    png,
    second_service,
    sha,
    stack_db,
    start_upload,
    status,
    upload_stream,
    upload_unary,
)
from tests.support.chat_client import ChatClient, expect_status

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
    async with stack_db(stack) as pool:
        yield pool


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
