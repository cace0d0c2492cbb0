"""Presence of one process (BROKER=memory): a user is online while they hold a stream here.

Streams are counted per user; the first connect and the last disconnect are published as
PresenceChanged events through the same event fan-out the Redis twin uses, so members see
users come and go exactly as with Redis. Guarantees: `domain.ports.Presence`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from chat_service.domain.ports import EventPublisher, GroupsOf
from chat_service.presence.announce import announce

log = logging.getLogger(__name__)


class LocalPresence:
    def __init__(self, *, events: EventPublisher, groups_of: GroupsOf) -> None:
        self._events = events
        self._groups_of = groups_of
        self._streams: dict[int, int] = {}  # user id -> open streams in this process

    async def online_users(self, user_ids: Sequence[int]) -> set[int]:
        return {u for u in user_ids if u in self._streams}

    async def connected(self, user_id: int, group_ids: Sequence[int] | None = None) -> None:
        count = self._streams.get(user_id, 0)
        self._streams[user_id] = count + 1
        if not count:
            await self._announce(user_id, True, group_ids)

    async def disconnected(self, user_id: int) -> None:
        count = self._streams.get(user_id, 0) - 1
        if count > 0:
            self._streams[user_id] = count
            return
        if self._streams.pop(user_id, None) is not None:
            await self._announce(user_id, False)

    async def _announce(
        self, user_id: int, online: bool, group_ids: Sequence[int] | None = None
    ) -> None:
        await announce(self._events, self._groups_of, user_id, online, group_ids)

    def start(self) -> None:
        """No background work for one process."""

    async def stop(self) -> None:
        """Leave cleanly: this process's users go offline, announced like a last disconnect."""
        for uid in list(self._streams):
            self._streams[uid] = 1
            await self.disconnected(uid)
