"""Upload quotas through the real gRPC API (issue 12, item 4): nobody can fill the disk.

Its own cluster (PostgreSQL, Redis, two service processes) with small quotas, so each can be
reached in a few calls; calls alternate between the two pods, so the quotas are shown to be
shared. Every refusal is RESOURCE_EXHAUSTED naming the quota:

  pending (unsent) uploads per user: 3 uploads, 2500 bytes (declared sizes)
  uploads started per user per hour: 6 uploads, 5000 bytes (sent or not, deleted or not)
  bytes stored and reserved per group: 3000
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import grpc
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.ports import free_port
from chat_devstack.processes import ServiceProcess
from chat_devstack.tokens import mint
from chat_service.attachments.settings import GIB, MIB, S3Settings, load_attachment_settings
from chat_service.attachments.store_s3 import S3BlobStore
from chat_service.config import ConfigError, load_settings
from chat_service.domain.errors import Unavailable
from chat_service.gen import chat_pb2 as pb
from chat_service.storage.postgres.repository import create_pool
from tests.support.chat_client import ChatClient, expect_status

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
_ids = itertools.count(random.randint(1_000, 9_000) * 100_000)

QUOTA_ENV = {
    "ATTACHMENT_MAX_BYTES": "1000",
    "ATTACHMENT_PENDING_MAX_PER_USER": "3",
    "ATTACHMENT_PENDING_BYTES_PER_USER": "2500",
    "ATTACHMENT_USER_UPLOADS_PER_WINDOW": "6",
    "ATTACHMENT_USER_BYTES_PER_WINDOW": "5000",
    "ATTACHMENT_USER_WINDOW_SECONDS": "3600",
    "ATTACHMENT_GROUP_STORAGE_BYTES": "3000",
    "SHUTDOWN_DRAIN_SECONDS": "0",
    "SHUTDOWN_GRACE_SECONDS": "1",
}


# ---- settings (no server) ----


def test_quota_settings_defaults_env_and_refusals() -> None:
    d = load_attachment_settings({})
    assert d.orphan_ttl_seconds == 7_200  # hours, not a day
    q = d.quotas
    assert (q.pending_max_per_user, q.pending_bytes_per_user) == (10, 100 * MIB)
    assert (q.user_uploads_per_window, q.user_bytes_per_window, q.window_seconds) == (
        100, 200 * MIB, 3600,
    )
    assert q.group_storage_bytes == 2 * GIB
    s = load_attachment_settings({
        "ATTACHMENT_MAX_BYTES": "1 MiB",
        "ATTACHMENT_PENDING_MAX_PER_USER": "0",
        "ATTACHMENT_PENDING_BYTES_PER_USER": "50MiB",
        "ATTACHMENT_USER_BYTES_PER_WINDOW": "1.5 GiB",
        "ATTACHMENT_USER_UPLOADS_PER_WINDOW": "7",
        "ATTACHMENT_USER_WINDOW_SECONDS": "600",
        "ATTACHMENT_GROUP_STORAGE_BYTES": "0",
    })
    assert s.max_bytes == MIB
    assert s.quotas.pending_max_per_user == 0  # off
    assert s.quotas.pending_bytes_per_user == 50 * MIB
    assert s.quotas.user_bytes_per_window == 3 * GIB // 2
    assert (s.quotas.user_uploads_per_window, s.quotas.window_seconds) == (7, 600)
    assert s.quotas.group_storage_bytes == 0
    for bad in (
        {"ATTACHMENT_PENDING_MAX_PER_USER": "-1"},
        {"ATTACHMENT_PENDING_BYTES_PER_USER": "lots"},
        {"ATTACHMENT_PENDING_BYTES_PER_USER": "5 parsecs"},
        {"ATTACHMENT_USER_WINDOW_SECONDS": "0"},
        # A byte quota smaller than one allowed file would refuse files the size limit allows.
        {"ATTACHMENT_GROUP_STORAGE_BYTES": "1 MiB"},
        {"ATTACHMENT_MAX_BYTES": "200 MiB"},  # above the default pending bytes (100 MiB)
    ):
        with pytest.raises(ConfigError):
            load_attachment_settings(bad)


class _RefusingS3:
    """DeleteObjects answering 200 with per-key errors, as S3 does (e.g. AccessDenied)."""

    async def delete_objects(self, **kwargs: Any) -> dict[str, Any]:
        keys = [o["Key"] for o in kwargs["Delete"]["Objects"]]
        return {"Errors": [{"Key": k, "Code": "AccessDenied"} for k in keys]}


async def test_s3_objects_that_were_not_deleted_fail_the_purge_so_it_is_retried() -> None:
    """Before: DeleteObjects' per-key errors were ignored, the row deleted, the bytes kept
    in the bucket for ever. Now the purge fails (Unavailable) and the cleanup retries it."""
    store = S3BlobStore(S3Settings(bucket="b"))
    store._client = _RefusingS3()  # type: ignore[assignment]
    with pytest.raises(Unavailable, match="did not delete 2 of 2 objects"):
        await store._delete_keys(["attachments/x/000000000000", "attachments/x/000000000100"])


# ---- through the API ----


@pytest.fixture(scope="module")
def quota_stack() -> Iterator[Cluster]:
    cluster = Cluster(pods=2, with_envoy=False, extra_env=QUOTA_ENV).start()
    try:
        yield cluster
    finally:
        cluster.stop()


class Users:
    """Clients of fresh users; `pod` picks the service process (0 or 1) they talk to."""

    def __init__(self, channels: list[grpc.aio.Channel], secret: str) -> None:
        self._channels = channels
        self._secret = secret
        self.made: list[ChatClient] = []

    def __call__(self, pod: int = 0, user_id: int | None = None) -> ChatClient:
        uid = next(_ids) if user_id is None else user_id
        client = ChatClient(self._channels[pod], mint(self._secret, uid, name=f"u{uid}"), uid)
        self.made.append(client)
        return client

    def on_both_pods(self) -> tuple[ChatClient, ChatClient]:
        """One user, one client per pod."""
        first = self(0)
        return first, self(1, first.user_id)


@pytest.fixture
async def users(quota_stack: Cluster) -> AsyncIterator[Users]:
    addresses = [svc.address for svc in quota_stack.services]
    async with contextlib.AsyncExitStack() as stack:
        channels = [
            await stack.enter_async_context(grpc.aio.insecure_channel(a)) for a in addresses
        ]
        made = Users(channels, quota_stack.jwt_secret)
        yield made
        for client in made.made:
            await client.close()


@pytest.fixture
async def quota_db(quota_stack: Cluster) -> AsyncIterator[asyncpg.Pool]:
    s = load_settings(quota_stack.env, for_serving=False)
    pool = await create_pool(s.database.dsn, s.database.password, 1, 4)
    yield pool
    await pool.close()


def text(size: int, seed: int = 0) -> bytes:
    return bytes(ord("a") + (seed + i) % 26 for i in range(size))


async def start(
    client: ChatClient, group_id: int, size: int, seed: int = 0, name: str = "notes.txt"
) -> pb.UploadStatus:
    data = text(size, seed)
    return await client.stub.StartUpload(
        pb.StartUploadRequest(
            group_id=group_id, file_name=name, content_type="text/plain", size=size,
            sha256=hashlib.sha256(data).hexdigest(),
        ),
        metadata=client.metadata,
    )


async def finish(
    client: ChatClient, upload_id: str, size: int, seed: int = 0, offset: int = 0
) -> pb.UploadStatus:
    data = text(size, seed)
    reply: pb.UploadStatus = await client.stub.UploadChunk(
        pb.UploadChunkRequest(upload_id=upload_id, offset=offset, data=data[offset:]),
        metadata=client.metadata,
    )
    return reply


async def send_file(client: ChatClient, group_id: int, upload_id: str) -> pb.MessageResponse:
    reply: pb.MessageResponse = await client.stub.SendMessage(
        pb.SendMessageRequest(
            group_id=group_id, content="a file", type=pb.FILE, client_msg_id=upload_id,
            attachment_id=upload_id,
        ),
        metadata=client.metadata,
    )
    return reply


async def upload_and_send(client: ChatClient, group_id: int, size: int) -> pb.MessageResponse:
    upload_id = (await start(client, group_id, size)).upload_id
    assert (await finish(client, upload_id, size)).complete
    return await send_file(client, group_id, upload_id)


async def exhausted(awaitable: Any, *words: str) -> grpc.aio.AioRpcError:
    exc = await expect_status(EXHAUSTED, awaitable)
    details = exc.details() or ""
    for word in words:
        assert word in details, f"{word!r} not in {details!r}"
    return exc


def retry_after_ms(exc: grpc.aio.AioRpcError) -> int | None:
    for key, value in exc.trailing_metadata() or ():
        if key == "retry-after-ms":
            return int(value)
    return None


async def test_pending_uploads_per_user_count_and_sending_frees_a_slot(users: Users) -> None:
    alice, alice_b = users.on_both_pods()
    bob = users(1)
    group = await alice.create_group(members=[bob.user_id])
    # Three pending (the limit): one complete, one part-uploaded, one with no byte yet.
    first = (await start(alice, group.id, 10)).upload_id
    assert (await finish(alice, first, 10)).complete
    second = (await start(alice_b, group.id, 10, seed=1)).upload_id
    await alice_b.stub.UploadChunk(
        pb.UploadChunkRequest(upload_id=second, offset=0, data=text(10, 1)[:4]),
        metadata=alice_b.metadata,
    )
    await start(alice, group.id, 10, seed=2)
    # The fourth is refused on either pod, naming the quota and what to do.
    for client in (alice, alice_b):
        exc = await exhausted(
            start(client, group.id, 10, seed=3),
            "3 unsent uploads pending", "limit per user is 3", "send them in a message",
            "let them expire", "2 hours",
        )
        assert retry_after_ms(exc) is None  # waiting does not help soon: act instead
    # Another user is unaffected, in the same group.
    assert (await start(bob, group.id, 10)).upload_id
    # Sending the complete one in a message frees its slot; a part-uploaded one cannot be sent.
    await send_file(alice, group.id, first)
    await expect_status(grpc.StatusCode.INVALID_ARGUMENT, send_file(alice_b, group.id, second))
    assert (await start(alice_b, group.id, 10, seed=4)).upload_id
    await exhausted(start(alice, group.id, 10, seed=5), "3 unsent uploads pending")


async def test_pending_bytes_per_user_count_the_declared_size(users: Users) -> None:
    alice, alice_b = users.on_both_pods()
    bob = users()
    group = await alice.create_group(members=[bob.user_id])
    await start(alice, group.id, 1000)
    await start(alice_b, group.id, 1000, seed=1)  # 2000 reserved, not a byte stored
    await exhausted(
        start(alice, group.id, 1000, seed=2),
        "unsent uploads pending hold 2000 bytes", "declares 1000 bytes",
        "limit of 2500 bytes of unsent uploads per user", "send them",
    )
    await exhausted(start(alice_b, group.id, 501, seed=3), "declares 501 bytes")
    assert (await start(alice_b, group.id, 500, seed=4)).upload_id  # exactly 2500
    own = await bob.create_group()  # (this group holds 2500 bytes of its 3000 now)
    assert (await start(bob, own.id, 1000)).upload_id  # another user is unaffected


async def test_uploads_started_per_hour_count_sent_and_deleted_uploads(users: Users) -> None:
    alice, alice_b = users.on_both_pods()
    bob = users()
    group = await alice.create_group(members=[bob.user_id])
    messages = [
        await upload_and_send((alice, alice_b)[n % 2], group.id, 10) for n in range(6)
    ]
    # Nothing pending any more, but 6 started this hour: the 7th is refused on both pods,
    # with the time until the oldest leaves the window.
    for client in (alice, alice_b):
        exc = await exhausted(
            start(client, group.id, 10),
            "upload limit per user reached", "6 uploads started in the last 1 hour",
            "the limit is 6", "retry in",
        )
        wait = retry_after_ms(exc)
        assert wait is not None and 3_500_000 <= wait <= 3_600_000
    # Deleting the messages (and so their files) does not give the uploads back.
    await alice.stub.DeleteMessage(
        pb.DeleteMessageRequest(message_id=messages[0].id), metadata=alice.metadata
    )
    await exhausted(start(alice, group.id, 10), "6 uploads started")
    assert (await start(bob, group.id, 10)).upload_id


async def test_bytes_started_per_hour_per_user(users: Users) -> None:
    alice, alice_b = users.on_both_pods()
    bob = users()
    # Five groups: the group storage quota (3000) is not what stops this.
    groups = [await alice.create_group(members=[bob.user_id]) for _ in range(5)]
    for n, group in enumerate(groups):
        await upload_and_send((alice, alice_b)[n % 2], group.id, 1000)
    exc = await exhausted(
        start(alice_b, groups[0].id, 1),
        "upload volume limit per user reached", "5000 bytes started in the last 1 hour",
        "declares 1 byte;", "limit is 5000 bytes per 1 hour", "retry in",
    )
    assert retry_after_ms(exc) is not None
    assert (await start(bob, groups[0].id, 1000)).upload_id


async def test_group_storage_counts_sent_and_reserved_bytes(users: Users) -> None:
    alice, bob, carol = users(0), users(1), users(0)
    group = await alice.create_group(members=[bob.user_id, carol.user_id])
    sent = await upload_and_send(alice, group.id, 1000)
    await upload_and_send(alice, group.id, 1000)
    assert (await start(bob, group.id, 1000)).upload_id  # reserved: 3000, the limit
    for client in (bob, carol):
        await exhausted(
            start(client, group.id, 1),
            f"group {group.id} holds 3000 bytes of files", "group's storage limit of 3000 bytes",
            "delete messages with files",
        )
    other = await bob.create_group()
    assert (await start(bob, other.id, 1000)).upload_id  # another group is unaffected
    # Deleting a message with a file makes room.
    await alice.stub.DeleteMessage(
        pb.DeleteMessageRequest(message_id=sent.id), metadata=alice.metadata
    )
    assert (await start(carol, group.id, 1000)).upload_id


async def test_concurrent_starts_never_overshoot_a_quota(users: Users) -> None:
    alice, alice_b = users.on_both_pods()
    group = await alice.create_group()
    # 12 at once on two pods, one user: exactly 3 (the pending count) are accepted.
    results = await asyncio.gather(
        *(start((alice, alice_b)[n % 2], group.id, 10, seed=n) for n in range(12)),
        return_exceptions=True,
    )
    accepted = [r for r in results if isinstance(r, pb.UploadStatus)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(accepted) == 3 and len(refused) == 9, results
    assert all(r.code() == EXHAUSTED for r in refused)

    # Three users, two starts each at once, into one group of 3000 bytes: exactly 3.
    members = [users(n % 2) for n in range(3)]
    shared = await alice.create_group(members=[m.user_id for m in members])
    results = await asyncio.gather(
        *(start(m, shared.id, 1000, seed=n) for m in members for n in range(2)),
        return_exceptions=True,
    )
    accepted = [r for r in results if isinstance(r, pb.UploadStatus)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(accepted) == 3 and len(refused) == 3, results
    for exc in refused:
        assert exc.code() == EXHAUSTED and "storage limit" in (exc.details() or "")


@pytest.fixture
async def expiring_pod(quota_stack: Cluster) -> AsyncIterator[str]:
    """A third service process on the same database whose unsent uploads expire in 2 s,
    swept every 0.3 s (its sweep runs over the whole database: every test's uploads)."""
    env = {
        **quota_stack.env,
        "ATTACHMENT_ORPHAN_TTL_SECONDS": "2",
        "ATTACHMENT_CLEANUP_INTERVAL_SECONDS": "0.3",
    }
    pod = ServiceProcess("pod-expiring", env, free_port(), quota_stack.base_dir)
    await asyncio.to_thread(pod.start)
    try:
        yield pod.address
    finally:
        await asyncio.to_thread(pod.stop, 15)


async def test_expiry_deletes_the_bytes_and_frees_the_quota(
    expiring_pod: str, quota_stack: Cluster, quota_db: asyncpg.Pool
) -> None:
    async with grpc.aio.insecure_channel(expiring_pod) as channel:
        uid = next(_ids)
        alice = ChatClient(channel, mint(quota_stack.jwt_secret, uid), uid)
        group = await alice.create_group()
        complete = (await start(alice, group.id, 1000)).upload_id
        assert (await finish(alice, complete, 1000)).complete
        partial = (await start(alice, group.id, 1000, seed=1)).upload_id
        await alice.stub.UploadChunk(
            pb.UploadChunkRequest(upload_id=partial, offset=0, data=text(1000, 1)[:300]),
            metadata=alice.metadata,
        )
        empty = (await start(alice, group.id, 400, seed=2)).upload_id
        assert await quota_db.fetchval(
            "SELECT sum(length(data)) FROM attachment_chunks WHERE attachment_id = ANY($1)",
            [complete, partial],
        ) == 1300
        await exhausted(start(alice, group.id, 10, seed=3), "3 unsent uploads pending", "2 s")

        async def gone() -> None:
            ids = [complete, partial, empty]
            while await quota_db.fetchval(
                "SELECT count(*) FROM attachments WHERE id = ANY($1)", ids
            ):
                await asyncio.sleep(0.2)

        await asyncio.wait_for(gone(), 30)
        # Bytes and rows are gone; the quota is free again.
        assert await quota_db.fetchval(
            "SELECT count(*) FROM attachment_chunks WHERE attachment_id = ANY($1)",
            [complete, partial],
        ) == 0
        await expect_status(
            grpc.StatusCode.NOT_FOUND,
            alice.stub.GetUpload(pb.GetUploadRequest(upload_id=complete), metadata=alice.metadata),
        )
        assert (await start(alice, group.id, 1000, seed=4)).upload_id
        await alice.close()
