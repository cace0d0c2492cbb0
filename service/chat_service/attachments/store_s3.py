"""Attachment bytes in an S3-compatible object store (AWS S3, MinIO, Ceph, R2...).

Each uploaded chunk is one object, `{prefix}{attachment id}/{offset:012d}`; the zero-padded
offset makes the listing order the byte order. Any pod can continue an upload; nothing is
kept on the pod. aiobotocore keeps the event loop free.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from chat_service.attachments.settings import S3Settings
from chat_service.attachments.store import BlobCorrupt, contiguous
from chat_service.domain.errors import Unavailable

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

_UNREACHABLE = "the attachment store (S3) is unreachable; retry shortly"
_NETWORK_ERRORS = (BotoCoreError, ClientError, OSError, TimeoutError)
READ_AHEAD = 4  # part objects fetched concurrently when reading (each at most 1 MiB)


class S3BlobStore:
    def __init__(self, settings: S3Settings) -> None:
        self._settings = settings
        self._bucket = settings.bucket
        self._prefix = settings.prefix
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None

    @property
    def name(self) -> str:
        return "s3"

    async def open(self) -> None:
        s = self._settings
        config = AioConfig(
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=50,
            # Custom endpoints (MinIO, local servers) are addressed by path, not by host.
            s3={"addressing_style": "path"} if s.endpoint_url else None,
        )
        self._client = await self._stack.enter_async_context(
            get_session().create_client(
                "s3",
                endpoint_url=s.endpoint_url or None,
                region_name=s.region,
                aws_access_key_id=s.access_key_id or None,
                aws_secret_access_key=s.secret_access_key or None,
                config=config,
            )
        )

    async def close(self) -> None:
        self._client = None
        await self._stack.aclose()

    @property
    def client(self) -> S3Client:
        if self._client is None:
            raise Unavailable("the attachment store (S3) is not open")
        return self._client

    def _folder(self, blob_id: str) -> str:
        return f"{self._prefix}{blob_id}/"

    async def check(self) -> None:
        """Fail fast at start-up when the bucket is missing or unreachable."""
        try:
            await self.client.head_bucket(Bucket=self._bucket)
        except _NETWORK_ERRORS as exc:
            raise Unavailable(f"S3 bucket {self._bucket!r} is not usable: {exc}") from exc

    async def write(self, blob_id: str, offset: int, data: bytes) -> None:
        try:
            await self.client.put_object(
                Bucket=self._bucket, Key=f"{self._folder(blob_id)}{offset:012d}", Body=data
            )
        except _NETWORK_ERRORS as exc:
            raise Unavailable(_UNREACHABLE) from exc

    async def _keys(self, blob_id: str) -> AsyncGenerator[str, None]:
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self._bucket, Prefix=self._folder(blob_id)):
            for item in page.get("Contents", []):
                yield item["Key"]

    async def _get(self, key: str) -> bytes:
        try:
            reply = await self.client.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                raise BlobCorrupt(f"part {key} disappeared") from exc
            raise
        async with reply["Body"] as body:
            return await body.read()

    async def _parts(self, blob_id: str) -> AsyncGenerator[tuple[int, bytes], None]:
        """Parts in order, READ_AHEAD objects fetched concurrently (a file is many parts)."""
        pending: collections.deque[tuple[int, asyncio.Task[bytes]]] = collections.deque()
        try:
            async for key in self._keys(blob_id):
                offset = int(key.rsplit("/", 1)[1])
                pending.append((offset, asyncio.create_task(self._get(key))))
                if len(pending) >= READ_AHEAD:
                    first, task = pending.popleft()
                    yield first, await task
            while pending:
                first, task = pending.popleft()
                yield first, await task
        except _NETWORK_ERRORS as exc:
            raise Unavailable(_UNREACHABLE) from exc
        finally:  # the reader stopped early (client went away) or failed
            for _, task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*(t for _, t in pending), return_exceptions=True)

    def read(self, blob_id: str, size: int) -> AsyncGenerator[bytes, None]:
        return contiguous(self._parts(blob_id), size)

    async def delete(self, blob_id: str) -> None:
        try:
            batch: list[str] = []
            async for key in self._keys(blob_id):
                batch.append(key)
                if len(batch) == 1000:  # the most one DeleteObjects call takes
                    await self._delete_keys(batch)
                    batch = []
            if batch:
                await self._delete_keys(batch)
        except _NETWORK_ERRORS as exc:
            raise Unavailable(_UNREACHABLE) from exc

    async def _delete_keys(self, keys: list[str]) -> None:
        reply = await self.client.delete_objects(
            Bucket=self._bucket,
            Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
        )
        # DeleteObjects answers 200 even when some keys were not deleted (access denied,
        # throttling): those are listed in Errors. Without this check the row would be
        # deleted and the objects would stay in the bucket for ever, unaccounted.
        errors = reply.get("Errors") or []
        if errors:
            first = errors[0]
            raise Unavailable(
                f"the attachment store (S3) did not delete {len(errors)} of {len(keys)} "
                f"objects (first: {first.get('Key')}: {first.get('Code')}); retried later"
            )
