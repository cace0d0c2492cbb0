"""Use cases of file and image sharing: start, upload chunks (resumable), check, download,
purge and clean up. Knows nothing of gRPC; raises the domain errors of chat_service.domain.

An upload's life: StartUpload records the declared name, type, size and sha256 (members of
the group only). Chunks must arrive in order (offset = bytes received so far), so a client
resumes after a break from GetUpload's `received`. As soon as the first bytes are there
(sniff.HEAD_BYTES, or the whole file if smaller) the content type is detected from them and
a disguised or disallowed file is refused and discarded. When the last byte arrives the
checksum is verified (a mismatch resets the upload to zero), text is checked to be UTF-8
throughout and image dimensions are read. Until a message claims it (attachments.message_id),
the upload is an orphan that the cleanup deletes after ATTACHMENT_ORPHAN_TTL_SECONDS.

Quotas are checked at StartUpload against the declared size (attachments/quotas.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import re
import secrets
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping

import asyncpg

from chat_service.attachments import sniff
from chat_service.attachments.models import Attachment
from chat_service.attachments.quotas import quota_check
from chat_service.attachments.repository import AttachmentRepository
from chat_service.attachments.settings import AttachmentSettings
from chat_service.attachments.store import BlobCorrupt, BlobStore
from chat_service.attachments.store_postgres import PostgresBlobStore
from chat_service.attachments.store_s3 import S3BlobStore
from chat_service.domain.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from chat_service.domain.models import Role, UserProfile
from chat_service.domain.validation import safe_name

log = logging.getLogger(__name__)

RoleOf = Callable[[int, int], Awaitable[Role]]

FILE_NAME_MAX = 255
CONTENT_TYPE_MAX = 255
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
CLEANUP_BATCH = 100


def clean_file_name(raw: str) -> str:
    """The last path component (browsers may send C:\\fakepath\\x.png), trimmed, checked:
    no control characters (NUL included) and no bidi controls, which make other members
    see another name ("invoice\\u202efdp.bat" shows as "invoicetab.pdf")."""
    name = re.split(r"[\\/]", raw)[-1].strip()
    if not name or name in {".", ".."}:
        raise InvalidArgument("file_name is required")
    if len(name) > FILE_NAME_MAX:
        raise InvalidArgument(
            f"file_name is {len(name)} characters; the limit is {FILE_NAME_MAX}"
        )
    return safe_name(name, "file_name")


def clean_content_type(raw: str) -> str:
    if len(raw) > CONTENT_TYPE_MAX:
        raise InvalidArgument(
            f"content_type is {len(raw)} characters; the limit is {CONTENT_TYPE_MAX}"
        )
    return sniff.normalize(safe_name(raw, "content_type"))


class AttachmentService:
    def __init__(
        self,
        repo: AttachmentRepository,
        stores: Mapping[str, BlobStore],
        settings: AttachmentSettings,
        role_of: RoleOf,
    ) -> None:
        if settings.store not in stores:
            raise ValueError(f"no blob store named {settings.store!r}")
        self._repo = repo
        self._stores = dict(stores)
        self._settings = settings
        self._role_of = role_of
        self._cleanup: asyncio.Task[None] | None = None

    @property
    def settings(self) -> AttachmentSettings:
        return self._settings

    def _store(self, name: str) -> BlobStore:
        store = self._stores.get(name)
        if store is None:
            raise Unavailable(f"the attachment store {name!r} is not configured on this server")
        return store

    # ---- uploads ----

    async def start_upload(
        self,
        caller: UserProfile,
        *,
        group_id: int,
        file_name: str,
        content_type: str,
        size: int,
        sha256: str,
    ) -> Attachment:
        s = self._settings
        if group_id <= 0:
            raise InvalidArgument("group_id must be a positive integer")
        name = clean_file_name(file_name)
        claimed = clean_content_type(content_type)
        if not sniff.claim_allowed(claimed, s.allowed_types):
            raise InvalidArgument(
                f"content type {claimed} is not allowed; allowed: {', '.join(s.allowed_types)}"
            )
        if size <= 0:
            raise InvalidArgument("size must be a positive number of bytes")
        if size > s.max_bytes:
            raise InvalidArgument(
                f"size {size} bytes exceeds the limit of {s.max_bytes} bytes per file"
            )
        if not _SHA256.fullmatch(sha256):
            raise InvalidArgument("sha256 must be the file's SHA-256 digest as 64 hex digits")
        if await self._role_of(group_id, caller.id) == Role.NONE:
            raise PermissionDenied(f"you are not a member of group {group_id}")
        return await self._repo.create(
            attachment_id=secrets.token_urlsafe(16),
            group_id=group_id,
            owner_id=caller.id,
            file_name=name,
            claimed_type=claimed,
            size=size,
            sha256=sha256.lower(),
            store=s.store,
            window_seconds=s.quotas.window_seconds,
            admit=quota_check(s.quotas, s.orphan_ttl_seconds, group_id, size),
        )

    async def _owned(self, caller: UserProfile, upload_id: str) -> Attachment:
        if not upload_id:
            raise InvalidArgument("upload_id is required")
        if not _UPLOAD_ID.fullmatch(upload_id):  # not echoed: it may be anything, any size
            raise NotFound("upload_id names no upload (ids are up to 64 letters, digits, - or _)")
        att = await self._repo.get(upload_id)
        if att is None or att.owner_id != caller.id:
            raise NotFound(f"upload {upload_id} does not exist")
        return att

    async def get_upload(self, caller: UserProfile, upload_id: str) -> Attachment:
        att = await self._owned(caller, upload_id)
        if not att.completed and att.received == att.size:
            # Every byte arrived but the final check was interrupted (e.g. a pod died).
            return await self._finalize(att)
        return att

    async def upload_chunk(
        self, caller: UserProfile, upload_id: str, offset: int, data: bytes
    ) -> Attachment:
        limit = self._settings.max_chunk_bytes
        if len(data) > limit:
            raise InvalidArgument(
                f"chunk is {len(data)} bytes; the limit is {limit} bytes per chunk"
            )
        att = await self._owned(caller, upload_id)
        if not data:  # a status probe (e.g. the first message of a stream naming the upload)
            if not att.completed and att.received == att.size:
                return await self._finalize(att)
            return att
        if att.completed:
            raise InvalidArgument(f"upload {upload_id} is already complete")
        if offset != att.received:
            raise InvalidArgument(_offset_message(offset, att.received))
        if offset + len(data) > att.size:
            raise InvalidArgument(
                f"chunk at offset {offset} with {len(data)} bytes goes beyond the declared "
                f"size of {att.size} bytes"
            )
        head_part = data[: max(0, sniff.HEAD_BYTES - offset)]
        detected = ""
        if not att.content_type:
            head = att.head + head_part
            if len(head) >= min(sniff.HEAD_BYTES, att.size):
                try:
                    detected = sniff.check(
                        head,
                        claimed=att.claimed_type,
                        allowed=self._settings.allowed_types,
                        complete=len(head) == att.size,
                    )
                except sniff.Refused as exc:
                    await self._discard(att)
                    raise InvalidArgument(f"{exc}; the upload was discarded") from None
        store = self._store(att.store)
        await store.write(att.id, offset, data)
        advanced = await self._repo.advance(att.id, offset, len(data), head_part, detected)
        if advanced is None:  # another call moved the upload meanwhile, or deleted it
            current = await self._repo.get(att.id)
            if current is None:
                with contextlib.suppress(Unavailable):
                    await store.delete(att.id)  # what we just wrote must not outlive the row
                raise NotFound(f"upload {upload_id} does not exist")
            if current.completed:
                raise InvalidArgument(f"upload {upload_id} is already complete")
            raise InvalidArgument(_offset_message(offset, current.received))
        if advanced.received == advanced.size:
            return await self._finalize(advanced)
        return advanced

    async def _finalize(self, att: Attachment) -> Attachment:
        """All bytes are in: verify the checksum, the text, the image; then complete."""
        hasher = hashlib.sha256()
        text = sniff.TextValidator() if att.content_type == "text/plain" else None
        image = att.content_type.startswith("image/")
        prefix = bytearray()
        refused: sniff.Refused | None = None
        try:
            async with contextlib.aclosing(self._store(att.store).read(att.id, att.size)) as parts:
                async for piece in parts:
                    hasher.update(piece)
                    if text is not None and refused is None:
                        try:
                            text.feed(piece)
                        except sniff.Refused as exc:
                            refused = exc
                    if image and len(prefix) < sniff.IMAGE_PREFIX_BYTES:
                        prefix += piece[: sniff.IMAGE_PREFIX_BYTES - len(prefix)]
        except BlobCorrupt as exc:
            log.warning("upload %s: stored bytes inconsistent (%s); reset", att.id, exc)
            await self._reset(att)
            raise InvalidArgument(
                f"the stored bytes of upload {att.id} are inconsistent (chunks sent twice "
                "at once?); the upload was reset: send the file again from offset 0"
            ) from None
        digest = hasher.hexdigest()
        if digest != att.sha256:
            await self._reset(att)
            raise InvalidArgument(
                f"sha256 mismatch: declared {att.sha256}, the bytes received hash to {digest}; "
                "the upload was reset: send the file again from offset 0"
            )
        width = height = 0
        try:
            if text is not None and refused is None:
                text.finish()
            if refused is not None:
                raise refused
            if image:
                width, height = await asyncio.to_thread(
                    sniff.image_size,
                    bytes(prefix),
                    att.content_type,
                    att.size <= sniff.IMAGE_PREFIX_BYTES,
                )
        except sniff.Refused as exc:
            await self._discard(att)
            raise InvalidArgument(f"{exc}; the upload was discarded") from None
        done = await self._repo.complete(att.id, width, height)
        if done is not None:
            return done
        current = await self._repo.get(att.id)  # completed by a concurrent call, or purged
        if current is None:
            raise NotFound(f"upload {att.id} does not exist")
        return current

    async def _reset(self, att: Attachment) -> None:
        await self._store(att.store).delete(att.id)
        await self._repo.reset(att.id)

    async def _discard(self, att: Attachment) -> None:
        if await self._repo.mark_purging(att.id) is not None:
            await self._delete_marked(att.id, att.store)

    # ---- downloads ----

    async def download(
        self, caller: UserProfile, attachment_id: str
    ) -> tuple[Attachment, AsyncGenerator[bytes, None]]:
        """The attachment and its bytes in pieces of at most download_chunk_bytes."""
        if not attachment_id:
            raise InvalidArgument("attachment_id is required")
        if not _UPLOAD_ID.fullmatch(attachment_id):
            raise NotFound("attachment_id names no attachment")
        att = await self._repo.get(attachment_id)
        if att is None or not att.completed:
            raise NotFound(f"attachment {attachment_id} does not exist")
        if await self._role_of(att.group_id, caller.id) == Role.NONE:
            raise PermissionDenied(f"you are not a member of group {att.group_id}")
        return att, self._pieces(att)

    async def _pieces(self, att: Attachment) -> AsyncGenerator[bytes, None]:
        step = self._settings.download_chunk_bytes
        try:
            async with contextlib.aclosing(self._store(att.store).read(att.id, att.size)) as parts:
                async for part in parts:
                    for i in range(0, len(part), step):
                        yield part[i : i + step]
        except BlobCorrupt:
            raise NotFound(f"attachment {att.id} was deleted") from None

    # ---- deletion ----

    async def purge(self, attachment_id: str) -> None:
        """Delete an attachment's bytes and row (e.g. its message was deleted). Idempotent."""
        store = await self._repo.mark_purging(attachment_id)
        if store is not None:
            await self._delete_marked(attachment_id, store)

    async def _delete_marked(self, attachment_id: str, store_name: str) -> None:
        await self._store(store_name).delete(attachment_id)
        await self._repo.delete(attachment_id)

    async def cleanup_orphans(self, batch: int = CLEANUP_BATCH) -> int:
        """Delete uploads never sent in a message, older than the TTL (complete or not), and
        finish deletions abandoned by dead pods. Safe to run on every pod at once."""
        await self._repo.prune_upload_starts(self._settings.quotas.window_seconds)
        deleted = 0
        while True:
            claimed = await self._repo.claim_orphans(self._settings.orphan_ttl_seconds, batch)
            for attachment_id, store_name in claimed:
                try:
                    await self._delete_marked(attachment_id, store_name)
                    deleted += 1
                except Unavailable as exc:  # retried later (STALE_PURGE_SECONDS)
                    log.warning("could not delete attachment %s: %s", attachment_id, exc)
            if len(claimed) < batch:
                return deleted

    async def _cleanup_loop(self) -> None:
        interval = self._settings.cleanup_interval_seconds
        while True:
            await asyncio.sleep(interval * random.uniform(0.5, 1.0))  # pods spread out
            try:
                deleted = await self.cleanup_orphans()
                if deleted:
                    log.info("deleted %d unsent attachment uploads", deleted)
            except Exception:
                log.warning("attachment cleanup failed; retrying later", exc_info=True)

    def start(self) -> None:
        if self._cleanup is None:
            self._cleanup = asyncio.create_task(self._cleanup_loop(), name="attachment-cleanup")

    async def stop(self) -> None:
        if self._cleanup is not None:
            self._cleanup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._cleanup
            self._cleanup = None
        for store in self._stores.values():
            await store.close()


def _offset_message(offset: int, received: int) -> str:
    return (
        f"chunk offset {offset} is not where the upload stands: expected offset {received} "
        f"(bytes received so far); resume from there"
    )


async def create_attachment_service(
    pool: asyncpg.Pool, settings: AttachmentSettings, role_of: RoleOf
) -> AttachmentService:
    """Build the service with its stores: PostgreSQL always (it may hold older uploads), S3
    when configured (S3_BUCKET), whichever ATTACHMENT_STORE names for new uploads."""
    stores: dict[str, BlobStore] = {"postgres": PostgresBlobStore(pool)}
    if settings.s3_configured:
        s3 = S3BlobStore(settings.s3)
        await s3.open()
        try:
            await s3.check()
        except BaseException:
            await s3.close()
            raise
        stores["s3"] = s3
    return AttachmentService(AttachmentRepository(pool), stores, settings, role_of)
