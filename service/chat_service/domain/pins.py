"""Pinned messages: owners and admins pin and unpin (a bounded number per group), members
list them. A pin change is a change of the message (it takes the next update_seq and reaches
subscribers as an `updated` event), announced by a PinChanged event too."""

from __future__ import annotations

import logging

from chat_service.domain import validation
from chat_service.domain.access import visible_role
from chat_service.domain.errors import InvalidArgument, NotFound, PermissionDenied
from chat_service.domain.limits import Limits
from chat_service.domain.models import Message, MessageUpdated, PinChanged, Role, UserProfile
from chat_service.domain.ports import ChatRepository, EventPublisher, RateLimits

log = logging.getLogger(__name__)


class Pins:
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

    async def _check_rate(self, rule: str, user_id: int) -> None:
        if self._rate is not None:
            await self._rate.check(rule, user_id)

    async def set_pin(self, caller: UserProfile, message_id: int, pinned: bool) -> Message:
        if message_id <= 0:
            raise InvalidArgument("message_id must be a positive integer")
        await self._check_rate("user_pin", caller.id)
        message = await self._repo.get_message(message_id, caller.id)
        role = Role.NONE
        if message is not None:
            role = await self._repo.role_of(message.group_id, caller.id)
        if message is None or role == Role.NONE:
            raise NotFound(f"message {message_id} does not exist")
        if not role.manages_members:
            raise PermissionDenied("only owners and admins can pin or unpin messages")
        if pinned and message.deleted:
            raise InvalidArgument(f"message {message_id} was deleted")
        changed_message, changed = await self._repo.set_pin(
            message, caller.id, pinned, self._limits.pins_per_group_max
        )
        if changed:
            try:
                await self._events.publish(
                    [
                        MessageUpdated(changed_message),
                        PinChanged(message.group_id, message.id, pinned, caller.id),
                    ]
                )
            except Exception:  # stored: the change feed delivers it on resume
                log.warning("publishing a pin change failed", exc_info=True)
        return changed_message

    async def pinned(self, caller: UserProfile, group_id: int) -> list[Message]:
        validation.group_id(group_id)
        await self._check_rate("user_reads", caller.id)
        if await visible_role(self._repo, group_id, caller.id) == Role.NONE:
            raise PermissionDenied(f"you are not a member of group {group_id}")
        return await self._repo.pinned(group_id, caller.id)
