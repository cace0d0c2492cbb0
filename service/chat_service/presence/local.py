"""Presence of one process: a user is online while they hold a stream on this pod."""

from __future__ import annotations

from collections.abc import Sequence

from chat_service.fanout.hub import Hub


class LocalPresence:
    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    async def online_users(self, user_ids: Sequence[int]) -> set[int]:
        return {u for u in user_ids if u in self._hub.by_user}

    async def connected(self, user_id: int, group_ids: Sequence[int] | None = None) -> None:
        """Nothing to record: the hub already knows this pod's streams."""

    async def disconnected(self, user_id: int) -> None:
        """Nothing to record: the hub already knows this pod's streams."""

    def start(self) -> None:
        """No background work for one process."""

    async def stop(self) -> None:
        """No background work for one process."""
