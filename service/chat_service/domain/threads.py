"""Threads: replies under a parent message, read positions in them, and telling the group.

A reply is a message of the group: it takes the group's next seq, so open streams, replay
after a position and the gap filling carry it like any other; the parent's summary (reply
count, last reply, participants) changes in the same transaction and reaches subscribers as
an `updated` event (the change feed). Participants other than the replier also get a
ThreadReplied event; their unread replies are counted from stored positions, so the counts
are exact after a reconnect.
"""

from __future__ import annotations

import logging

from chat_service.domain import validation
from chat_service.domain.chat import read_cost
from chat_service.domain.conversation import (
    ThreadLink,
    ThreadPage,
    ThreadRead,
)
from chat_service.domain.errors import InvalidArgument, NotFound, PermissionDenied
from chat_service.domain.limits import Limits
from chat_service.domain.mentions import find_mentions
from chat_service.domain.models import (
    ChatEvent,
    Mentioned,
    Message,
    MessageKind,
    MessagePosted,
    MessageUpdated,
    Role,
    ThreadReplied,
    UserProfile,
)
from chat_service.domain.ports import ChatRepository, EventPublisher, RateLimits

log = logging.getLogger(__name__)


class Threads:
    def __init__(
        self,
        repo: ChatRepository,
        events: EventPublisher,
        limits: Limits,
        rate: RateLimits | None = None,
    ) -> None:
        self._repo = repo
        self._events = events
        self._limits = limits
        self._rate = rate

    async def _check_rate(self, rule: str, identifier: int, cost: int = 1) -> None:
        if self._rate is not None:
            await self._rate.check(rule, identifier, cost=cost)

    async def _parent(self, caller: UserProfile, parent_id: int) -> tuple[Message, Role]:
        """The thread's parent (a reply's own parent when given a reply) and the caller's
        role; NotFound for non-members, as for a message that does not exist."""
        if parent_id <= 0:
            raise InvalidArgument("parent_id must be a positive integer")
        message = await self._repo.get_message(parent_id, caller.id)
        if message is not None and message.thread_parent_id:
            message = await self._repo.get_message(message.thread_parent_id, caller.id)
        role = Role.NONE
        if message is not None:
            role = await self._repo.role_of(message.group_id, caller.id)
        if message is None or role == Role.NONE:
            raise NotFound(f"message {parent_id} does not exist")
        return message, role

    async def reply(
        self,
        caller: UserProfile,
        parent_id: int,
        content: str,
        client_msg_id: str,
        also_in_group: bool,
    ) -> Message:
        text = validation.message_content(content, MessageKind.TEXT, self._limits)
        key = validation.client_msg_id(client_msg_id, self._limits)
        await self._check_rate("user_send", caller.id)
        parent, role = await self._parent(caller, parent_id)
        if parent.kind == MessageKind.SYSTEM:
            raise InvalidArgument("SYSTEM messages have no threads")
        if parent.deleted:
            raise InvalidArgument(
                f"message {parent.id} was deleted: its thread can be read, not replied to"
            )
        await self._check_rate("group_send", parent.group_id)
        mentions = []
        if "@" in text:
            members = await self._repo.member_names(parent.group_id)
            mentions = find_mentions(
                text, members, allow_all=role.manages_members, author_id=caller.id
            )
        result = await self._repo.post_message(
            group_id=parent.group_id,
            sender=caller,
            content=text,
            kind=MessageKind.TEXT,
            client_msg_id=key,
            mentions=mentions,
            thread=ThreadLink(parent.id, parent.sender.id, parent.seq, also_in_group),
        )
        if result is None:
            raise PermissionDenied(f"you are not a member of group {parent.group_id}")
        reply = result.message
        if result.duplicate:
            return reply
        events: list[ChatEvent] = [MessagePosted(reply)]
        summary = await self._repo.get_message(parent.id)
        if summary is not None:
            events.append(MessageUpdated(summary))
            events.append(
                ThreadReplied(
                    group_id=reply.group_id,
                    parent_id=parent.id,
                    message_id=reply.id,
                    seq=reply.seq,
                    from_user_id=caller.id,
                    participant_ids=summary.thread_participants,
                    reply_count=summary.reply_count,
                )
            )
        events.extend(
            Mentioned(reply.group_id, reply.id, reply.seq, caller.id, uid)
            for uid in sorted({m.user_id for m in reply.mentions})
        )
        await self._publish(events)
        return reply

    async def thread(
        self, caller: UserProfile, parent_id: int, after_seq: int, limit: int
    ) -> ThreadPage:
        if after_seq < 0:
            raise InvalidArgument("after_seq must not be negative")
        size = validation.page_size(limit, self._limits)
        await self._check_rate("user_reads", caller.id, cost=read_cost(size))
        parent, _ = await self._parent(caller, parent_id)
        replies, has_more = await self._repo.thread_replies(parent.id, after_seq, size, caller.id)
        read_seq, unread = await self._repo.thread_position(parent.id, caller.id)
        return ThreadPage(parent, replies, has_more, read_seq, unread)

    async def mark_read(self, caller: UserProfile, parent_id: int, seq: int) -> ThreadRead:
        if seq < 0:
            raise InvalidArgument("seq must not be negative")
        await self._check_rate("user_mark_read", caller.id)
        parent, _ = await self._parent(caller, parent_id)
        return await self._repo.mark_thread_read(parent.id, caller.id, seq)

    async def _publish(self, events: list[ChatEvent]) -> None:
        """After the commit; a failure loses nothing (the sweep replays from storage)."""
        try:
            await self._events.publish(events)
        except Exception:
            log.warning("publishing thread events failed; subscribers will catch up",
                        exc_info=True)
