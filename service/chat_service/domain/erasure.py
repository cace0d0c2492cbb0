"""GDPR (issue 15), for the app's backend only: erasing a user, exporting what is stored.

Erase, in an order that is safe to repeat (idempotent) and to retry after a failure:
1. the profile is anonymised and marked erased (every pod refuses the user's tokens from the
   next ban-list refresh; the event below makes it immediate) and the user leaves every group
   (as "Deleted user");
2. their attachments are deleted (bytes and rows);
3. their messages are tombstoned or anonymised (ERASE_MESSAGES), their reactions, mentions,
   bans and upload history removed; no row is deleted, so other members' history keeps its
   seqs;
4. their open streams are closed on every pod (presence then goes offline);
5. online members see the changed messages at once: an `updated` event (the message's new
   state, as DeleteMessage sends) for each message that took a new update_seq, the newest
   ERASE_LIVE_UPDATES of them; older ones reach clients when they resume with
   `last_update_seq` or reload the history, as any change they missed does.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from chat_service.domain import validation
from chat_service.domain.directory import Directory
from chat_service.domain.models import AccessRevoked, ChatEvent, MessageUpdated
from chat_service.domain.ports import AdminRepository, AttachmentPurger, EventPublisher
from chat_service.domain.publishing import publish_quietly
from chat_service.envconfig import choice, integer, var


@dataclass(frozen=True)
class ErasureSettings:
    # What EraseUser does to the user's messages: tombstone (content removed, seq kept) or
    # anonymise (content kept under the anonymised profile).
    erase_messages: str = var("ERASE_MESSAGES", "tombstone", choice("tombstone", "anonymise"))
    # At most this many `updated` events per erasure (the newest changed messages); 0: none.
    live_updates: int = var("ERASE_LIVE_UPDATES", 500, integer(0))


EXPORT_PAGE = 500
EXPORT_CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Erased:
    groups_left: int
    messages: int
    attachments: int


class Erasure:
    def __init__(
        self,
        repo: AdminRepository,
        directory: Directory,
        events: EventPublisher,
        attachments: AttachmentPurger | None,
        *,
        tombstone: bool,
        live_updates: int = 500,
    ) -> None:
        self._repo = repo
        self._directory = directory
        self._events = events
        self._attachments = attachments
        self._tombstone = tombstone
        self._live_updates = live_updates

    async def erase(self, user_id: int) -> Erased:
        validation.user_id(user_id)
        groups_left = await self._directory.delete_user(user_id, erased=True)
        attachment_ids = await self._repo.attachment_ids_of_user(user_id)
        if self._attachments is not None:
            for attachment_id in attachment_ids:
                await self._attachments.purge(attachment_id)
        content = await self._repo.erase_user_content(user_id, tombstone=self._tombstone)
        await publish_quietly(self._events, [AccessRevoked(user_id, "account erased")])
        updates = await self._updates(content.changed_ids)
        if updates:
            await publish_quietly(self._events, updates)
        return Erased(groups_left, content.messages, len(attachment_ids))

    async def _updates(self, changed_ids: tuple[int, ...]) -> list[ChatEvent]:
        """`updated` events for the newest `live_updates` changed messages (ids grow with
        time), oldest first."""
        newest = sorted(changed_ids)[-self._live_updates:] if self._live_updates > 0 else []
        events: list[ChatEvent] = []
        for message_id in newest:
            message = await self._repo.get_message(message_id)
            if message is not None:
                events.append(MessageUpdated(message))
        return events

    async def export(self, user_id: int) -> AsyncIterator[bytes]:
        """JSON lines: the profile and every other record, then the messages page by page;
        chunks of about EXPORT_CHUNK_BYTES, never splitting a record."""
        validation.user_id(user_id)
        buffer: list[bytes] = []
        size = 0
        records: list[dict[str, Any]] = await self._repo.export_records(user_id)
        after = 0
        while True:
            for record in records:
                line = json.dumps(record, ensure_ascii=False, default=str).encode() + b"\n"
                buffer.append(line)
                size += len(line)
                if size >= EXPORT_CHUNK_BYTES:
                    yield b"".join(buffer)
                    buffer, size = [], 0
            records = await self._repo.export_messages(user_id, after, EXPORT_PAGE)
            if not records:
                break
            after = int(records[-1]["id"])
        if buffer:
            yield b"".join(buffer)
