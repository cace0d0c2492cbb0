"""Attachments in the S3 store through the real API, against a real S3-compatible server
(moto_server): a resumed upload lands one object per chunk in the bucket and none in
PostgreSQL, a pod without S3 says so, and the orphan cleanup deletes the objects too."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from chat_devstack.cluster import Cluster
from chat_devstack.ports import free_port, wait_for_port
from chat_devstack.processes import ServiceProcess
from chat_devstack.tokens import mint
from chat_service.attachments.settings import (
    S3Settings,
)
from chat_service.attachments.store_postgres import PostgresBlobStore
from chat_service.attachments.store_s3 import S3BlobStore
from tests.conftest import UserFactory
from tests.support.attachments import (
    KIB,
    MIB,
    age,
    assert_png_attachment,
    download,
    png,
    second_service,
    stack_db,
    start_upload,
    status,
    upload_stream,
)
from tests.support.chat_client import ChatClient, expect_status


@pytest.fixture
async def db(stack: Cluster) -> AsyncIterator[asyncpg.Pool]:
    async with stack_db(stack) as pool:
        yield pool


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
