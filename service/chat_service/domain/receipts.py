"""Read receipts and unread counts: a per-member read position that only moves forward."""

from __future__ import annotations

from chat_service.domain import validation
from chat_service.domain.access import visible_role
from chat_service.domain.conversation import UnreadResult
from chat_service.domain.errors import InvalidArgument, NotFound, PermissionDenied
from chat_service.domain.models import (
    ReceiptMoved,
    Role,
    UserProfile,
)
from chat_service.domain.ports import (
    EventPublisher,
    GroupAccess,
    RateLimits,
    ReadResultLike,
    ReceiptStore,
)
from chat_service.domain.privacy import PRIVATE, Privacy

# Unread and mention counts stop at this many (clients show it as "999+"). Counting reads one
# index entry per message, and every group listing, GetGroup and MarkRead counts: uncapped, a
# member 1,000,000 messages behind cost 116 ms of PostgreSQL per call (measured), which anyone
# could repeat by joining a busy open group and never reading it.
UNREAD_COUNT_MAX = 1000


class Receipts:
    def __init__(
        self,
        store: ReceiptStore,
        groups: GroupAccess,
        events: EventPublisher,
        rate: RateLimits | None = None,
        privacy: Privacy = PRIVATE,
    ) -> None:
        self._store = store
        self._groups = groups
        self._events = events
        self._rate = rate
        self._privacy = privacy

    async def _check_rate(self, rule: str, user_id: int) -> None:
        # Per-user budgets are spent after authentication and input checks, before any
        # storage work, so a flood of calls (refused or not) stays bounded.
        if self._rate is not None:
            await self._rate.check(rule, user_id)

    async def mark_read(self, caller: UserProfile, group_id: int, seq: int) -> ReadResultLike:
        validation.group_id(group_id)
        if seq < 0:
            raise InvalidArgument("seq must not be negative")
        await self._check_rate("user_mark_read", caller.id)
        result = await self._store.mark_read(group_id, caller.id, seq)
        if result is None:
            raise PermissionDenied(f"you are not a member of group {group_id}")
        if result.moved and not result.private:
            await self._events.publish([ReceiptMoved(group_id, caller.id, result.read_seq)])
        return result

    async def mark_unread(
        self, caller: UserProfile, group_id: int, message_id: int
    ) -> UnreadResult:
        """Move the caller's read position back so that `message_id` is their first unread
        message (never forward: later messages stay unread). Counts follow from the stored
        position; other members see the receipt move back unless receipts are private."""
        validation.group_id(group_id)
        if message_id <= 0:
            raise InvalidArgument("message_id must be a positive integer")
        await self._check_rate("user_mark_read", caller.id)
        if await visible_role(self._groups, group_id, caller.id) == Role.NONE:
            raise PermissionDenied(f"you are not a member of group {group_id}")
        result = await self._store.mark_unread(group_id, caller.id, message_id)
        if result is None:
            raise NotFound(f"message {message_id} is not in group {group_id}")
        if not result.private:
            await self._events.publish([ReceiptMoved(group_id, caller.id, result.read_seq)])
        return result

    async def readers(
        self, caller: UserProfile, group_id: int, message_id: int
    ) -> tuple[list[UserProfile], int]:
        """Who has read the message, and how many have not: for members only. A non-member
        hears NotFound about a missing or invite-only group, else PermissionDenied (after the
        rate check, as a member's call would be charged)."""
        validation.group_id(group_id)
        role = await visible_role(self._groups, group_id, caller.id)
        await self._check_rate("user_reads", caller.id)
        if role == Role.NONE:
            raise PermissionDenied(f"you are not a member of group {group_id}")
        found = await self._store.readers(group_id, message_id)
        if found is None:
            raise NotFound(f"message {message_id} is not in group {group_id}")
        readers, unread_by = found
        return [self._privacy.user(u) for u in readers], unread_by

    async def set_muted(self, caller: UserProfile, group_id: int, muted: bool) -> None:
        if not await self._store.set_muted(group_id, caller.id, muted):
            raise PermissionDenied(f"you are not a member of group {group_id}")

    async def private_receipts(self, caller: UserProfile, value: bool | None) -> bool:
        return await self._store.private_receipts(caller.id, value)
