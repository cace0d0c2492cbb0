"""Edits, deletes and reactions: who may change a message, and telling the group."""

from __future__ import annotations

import logging

from chat_service.domain import validation
from chat_service.domain.errors import InvalidArgument, NotFound, PermissionDenied
from chat_service.domain.limits import Limits
from chat_service.domain.mentions import find_mentions
from chat_service.domain.models import Message, MessageKind, MessageUpdated, Role, UserProfile
from chat_service.domain.ports import (
    AttachmentPurger,
    ChatRepository,
    EventPublisher,
    MessageChangeStore,
    RateLimits,
)
from chat_service.domain.reactions import validate_emoji

log = logging.getLogger(__name__)


class MessageChanges:
    def __init__(
        self,
        repo: ChatRepository,
        store: MessageChangeStore,
        events: EventPublisher,
        limits: Limits,
        attachments: AttachmentPurger | None = None,
        max_distinct_reactions: int = 20,
        rate: RateLimits | None = None,
    ) -> None:
        self._repo = repo
        self._store = store
        self._events = events
        self._limits = limits
        self._attachments = attachments
        self._max_distinct = max_distinct_reactions
        self._rate = rate

    def use_attachments(self, attachments: AttachmentPurger) -> None:
        self._attachments = attachments

    async def _visible(
        self, caller: UserProfile, message_id: int, rule: str
    ) -> tuple[Message, Role]:
        if message_id <= 0:
            raise InvalidArgument("message_id must be a positive integer")
        # The caller's own budget for this kind of change, spent before any storage work so a
        # flood (allowed or refused) is bounded; there is no per-group budget to protect here.
        if self._rate is not None:
            await self._rate.check(rule, caller.id)
        message = await self._repo.get_message(message_id, caller.id)
        if message is None:
            raise NotFound(f"message {message_id} does not exist")
        role = await self._repo.role_of(message.group_id, caller.id)
        if role == Role.NONE:
            raise NotFound(f"message {message_id} does not exist")
        return message, role

    async def edit(self, caller: UserProfile, message_id: int, content: str) -> Message:
        message, role = await self._visible(caller, message_id, "user_edit")
        if message.sender.id != caller.id or message.kind == MessageKind.SYSTEM:
            raise PermissionDenied("only the author can edit a message")
        if message.deleted:
            raise InvalidArgument(f"message {message_id} was deleted")
        text = validation.message_content(content, MessageKind.TEXT, self._limits)
        members = await self._repo.member_names(message.group_id) if "@" in text else []
        mentions = find_mentions(
            text, members, allow_all=role.manages_members, author_id=caller.id
        )
        updated = await self._store.edit(message, text, mentions)
        await self._events.publish([MessageUpdated(updated)])
        return updated

    async def delete(self, caller: UserProfile, message_id: int) -> Message:
        message, role = await self._visible(caller, message_id, "user_delete")
        if message.kind == MessageKind.SYSTEM:
            raise PermissionDenied("SYSTEM messages cannot be deleted")
        if message.sender.id != caller.id and not role.manages_members:
            raise PermissionDenied("only the author or an owner/admin can delete a message")
        if message.deleted:
            return message  # deleting twice is a no-op
        deleted, attachment_id = await self._store.delete(message)
        if attachment_id and self._attachments is not None:
            try:
                await self._attachments.purge(attachment_id)
            except Exception:  # the orphan cleanup removes it later
                log.warning("could not purge attachment %s", attachment_id, exc_info=True)
        await self._events.publish([MessageUpdated(deleted)])
        return deleted

    async def react(
        self, caller: UserProfile, message_id: int, emoji: str, add: bool
    ) -> Message:
        symbol = validate_emoji(emoji)
        message, _ = await self._visible(caller, message_id, "user_react")
        if message.deleted:
            raise InvalidArgument(f"message {message_id} was deleted")
        updated, changed = await self._store.react(
            message, caller.id, symbol, add, self._max_distinct
        )
        if changed:
            await self._events.publish([MessageUpdated(updated)])
        return updated
